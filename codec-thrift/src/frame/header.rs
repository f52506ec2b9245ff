//! Reading and writing THeader and TTHeader headers.

use super::*;

/// A bounds-checked reader over a header.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ThriftException> {
        if self.buf.len() < n {
            return Err(err(ProtocolExceptionKind::InvalidData, "header ends early"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ThriftException> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ThriftException> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn varint(&mut self) -> Result<u32, ThriftException> {
        let mut out: u64 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            out |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(out)
                    .map_err(|_| err(ProtocolExceptionKind::InvalidData, "varint overflow"));
            }
        }
        Err(err(ProtocolExceptionKind::InvalidData, "varint too long"))
    }
}

/// Marks an int-keyed entry's offset in [`Header`]'s index. Offsets fit
/// in 31 bits: a header is at most 4 × 65,535 bytes.
pub(super) const INT_ENTRY: u32 = 1 << 31;

/// One entry of a header's info blocks.
pub(super) enum Entry<'a> {
    /// A block of `n` entries starts (counted against the limit before any
    /// is read).
    Block(usize),
    /// A string key/value.
    String(&'a [u8], &'a [u8]),
    /// An integer-keyed value (TTHeader).
    Int(u16, &'a [u8]),
}

/// Walks the info blocks of a THeader or TTHeader header. The same walk
/// checks a header as its frame is read and finds values later.
pub(super) struct Entries<'a> {
    c: Cursor<'a>,
    apache: bool,
    /// Entries left in the current block, and whether they are int-keyed.
    left: usize,
    ints: bool,
    done: bool,
}

impl<'a> Entries<'a> {
    pub(super) fn new(info: &'a [u8], apache: bool) -> Self {
        Entries {
            c: Cursor { buf: info },
            apache,
            left: 0,
            ints: false,
            done: false,
        }
    }

    fn len(&mut self) -> Result<usize, ThriftException> {
        if self.apache {
            Ok(self.c.varint()? as usize)
        } else {
            Ok(self.c.u16()? as usize)
        }
    }

    /// Where the walk is: the offset of the next entry in the info.
    pub(super) fn offset(&self, info: &[u8]) -> usize {
        info.len() - self.c.buf.len()
    }

    /// The entry at the front of `at` (an offset the walk reported, so
    /// already checked: no error to build, only bounds).
    pub(super) fn entry_at(at: &'a [u8], apache: bool, int: bool) -> Option<Entry<'a>> {
        fn len(b: &[u8], apache: bool) -> Option<(usize, usize)> {
            if !apache {
                let l = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
                return Some((l, 2));
            }
            let mut out = 0usize;
            for (i, &byte) in b.iter().take(5).enumerate() {
                out |= ((byte & 0x7f) as usize) << (7 * i);
                if byte & 0x80 == 0 {
                    return Some((out, i + 1));
                }
            }
            None
        }
        let part = |b: &'a [u8]| -> Option<(&'a [u8], &'a [u8])> {
            let (l, n) = len(b, apache)?;
            let rest = b.get(n..)?;
            Some((rest.get(..l)?, rest.get(l..)?))
        };
        if int {
            let k = u16::from_be_bytes([*at.first()?, *at.get(1)?]);
            let (v, _) = part(at.get(2..)?)?;
            return Some(Entry::Int(k, v));
        }
        let (k, rest) = part(at)?;
        let (v, _) = part(rest)?;
        Some(Entry::String(k, v))
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>, ThriftException> {
        if self.left > 0 {
            self.left -= 1;
            if self.ints {
                let k = self.c.u16()?;
                let vl = self.len()?;
                return Ok(Some(Entry::Int(k, self.c.take(vl)?)));
            }
            let kl = self.len()?;
            let k = self.c.take(kl)?;
            let vl = self.len()?;
            return Ok(Some(Entry::String(k, self.c.take(vl)?)));
        }
        loop {
            if self.c.buf.is_empty() {
                return Ok(None);
            }
            if self.apache {
                match self.c.varint()? {
                    1 => {
                        let n = self.c.varint()? as usize;
                        (self.left, self.ints) = (n, false);
                        return Ok(Some(Entry::Block(n)));
                    }
                    // Padding (0) ends the header; unknown info blocks end
                    // the readable part, as in Apache's reader.
                    _ => return Ok(None),
                }
            }
            match self.c.u8()? {
                0 => {}
                id @ (INFO_KEY_VALUE | INFO_INT_KEY_VALUE) => {
                    let ints = id == INFO_INT_KEY_VALUE;
                    let n = self.c.u16()? as usize;
                    (self.left, self.ints) = (n, ints);
                    return Ok(Some(Entry::Block(n)));
                }
                INFO_ACL_TOKEN => {
                    let l = self.c.u16()? as usize;
                    self.c.take(l)?;
                }
                other => {
                    return Err(err(
                        ProtocolExceptionKind::InvalidData,
                        format!("unknown TTHeader info id {other:#x}"),
                    ))
                }
            }
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, ThriftException>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Counts a header's key/values against the limit as their blocks declare
/// them, before any is read.
struct EntryBudget {
    left: usize,
    max: usize,
}

impl EntryBudget {
    fn take(&mut self, n: usize) -> Result<(), ThriftException> {
        self.left = self.left.checked_sub(n).ok_or_else(|| {
            err(
                ProtocolExceptionKind::SizeLimit,
                format!("header declares more than {} key/values", self.max),
            )
        })?;
        Ok(())
    }
}

pub(super) fn read_header(
    body: &mut Bytes,
    max_entries: usize,
) -> Result<(Transport, Protocol, Header), ThriftException> {
    let mut budget = EntryBudget {
        left: max_entries,
        max: max_entries,
    };
    let mut c = Cursor { buf: &body[..] };
    let magic = c.u16()?;
    let flags = c.u16()?;
    let seq = c.take(4)?;
    let seq_id = i32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
    let words = c.u16()? as usize;
    let size = words * 4;
    let hdr = c.take(size)?;
    let payload_at = 10 + size;
    let mut h = Cursor { buf: hdr };
    let (transport, protocol_id, apache) = if magic == TTHEADER_MAGIC {
        let protocol_id = h.u8()?;
        if h.u8()? > 0 {
            return Err(err(
                ProtocolExceptionKind::NotImplemented,
                "TTHeader transforms are not supported",
            ));
        }
        (Transport::TTHeader, protocol_id, false)
    } else if magic == THEADER_MAGIC {
        let protocol_id = u8::try_from(h.varint()?)
            .map_err(|_| err(ProtocolExceptionKind::InvalidData, "bad protocol id"))?;
        if h.varint()? > 0 {
            return Err(err(
                ProtocolExceptionKind::NotImplemented,
                "THeader transforms (zlib) are not supported",
            ));
        }
        (Transport::THeader, protocol_id, true)
    } else {
        return Err(err(
            ProtocolExceptionKind::BadVersion,
            format!("unknown header magic {magic:#06x}"),
        ));
    };
    // Check every entry now, so that lookups later cannot fail, and note
    // where each starts.
    let info = h.buf;
    let mut index = SmallVec::new();
    let mut walk = Entries::new(info, apache);
    loop {
        let at = walk.offset(info) as u32;
        let Some(entry) = walk.next() else { break };
        match entry? {
            Entry::Block(n) => budget.take(n)?,
            Entry::Int(..) => index.push(at | INT_ENTRY),
            Entry::String(k, v) => {
                index.push(at);
                if std::str::from_utf8(k).is_err() || std::str::from_utf8(v).is_err() {
                    return Err(err(
                        ProtocolExceptionKind::InvalidData,
                        "header value is not UTF-8",
                    ));
                }
            }
        }
    }
    let protocol = Protocol::from_header_id(protocol_id).ok_or_else(|| {
        err(
            ProtocolExceptionKind::NotImplemented,
            format!("unsupported protocol id {protocol_id}"),
        )
    })?;
    let info_at = 10 + (size - h.buf.len());
    let header = Header {
        seq_id,
        flags,
        info: body.slice(info_at..payload_at),
        index,
        apache,
    };
    body.advance(payload_at);
    Ok((transport, protocol, header))
}

// ===== writing =====

/// TTHeader writes string lengths and entry counts in two bytes.
const TTHEADER_MAX_U16: usize = u16::MAX as usize;
/// THeader's string count is reserved as a 3-byte varint: 21 bits.
const THEADER_MAX_ENTRIES: usize = (1 << 21) - 1;
/// The header size is written in 4-byte words in two bytes.
const MAX_HEADER_BYTES: usize = 4 * u16::MAX as usize;

/// A header field too large for the width the wire gives its length or
/// count. Recorded rather than written: a wrapped length would make the
/// receiver parse the field's tail as headers of the sender's choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Overflow {
    what: &'static str,
    len: usize,
    max: usize,
}

impl Overflow {
    fn check(what: &'static str, len: usize, max: usize) -> Result<(), Overflow> {
        if len > max {
            Err(Overflow { what, len, max })
        } else {
            Ok(())
        }
    }

    fn into_exception(self) -> ThriftException {
        err(
            ProtocolExceptionKind::SizeLimit,
            format!(
                "header {} of {} exceeds the {} the transport can carry",
                self.what, self.len, self.max
            ),
        )
    }
}

/// Where a frame being written starts, so its lengths can be patched.
#[derive(Debug, Clone, Copy)]
pub struct FrameMark {
    transport: Transport,
    start: usize,
    inner: Option<usize>,
    overflow: Option<Overflow>,
}

/// Writes the key/values of a header being encoded. A key/value the
/// transport cannot carry is not written; [`finish_frame`] then fails.
#[derive(Debug)]
pub struct HeaderWriter<'a> {
    dst: &'a mut BytesMut,
    transport: Transport,
    count_at: Option<usize>,
    count: usize,
    overflow: Option<Overflow>,
}

impl HeaderWriter<'_> {
    /// Add a string key/value: `prefix` + `key` → `value`.
    pub fn string(&mut self, prefix: &str, key: &str, value: &str) {
        self.text(prefix, key, value.as_bytes());
    }

    /// [`HeaderWriter::string`] for a value formatted on the stack (such
    /// as a `traceparent`): `value` must be UTF-8 text, which a reader
    /// checks.
    pub(crate) fn text(&mut self, prefix: &str, key: &str, value: &[u8]) {
        if self.overflow.is_some() {
            return;
        }
        let key_len = prefix.len() + key.len();
        let (max_len, max_entries) = match self.transport {
            Transport::TTHeader => (TTHEADER_MAX_U16, TTHEADER_MAX_U16),
            _ => (u32::MAX as usize, THEADER_MAX_ENTRIES),
        };
        let fits = Overflow::check("key length", key_len, max_len)
            .and(Overflow::check("value length", value.len(), max_len))
            .and(Overflow::check("string count", self.count + 1, max_entries));
        if let Err(o) = fits {
            self.overflow = Some(o);
            return;
        }
        if self.count_at.is_none() {
            match self.transport {
                Transport::TTHeader => {
                    self.dst.put_u8(INFO_KEY_VALUE);
                    self.count_at = Some(self.dst.len());
                    self.dst.put_u16(0);
                }
                _ => {
                    self.dst.put_u8(1);
                    self.count_at = Some(self.dst.len());
                    // THeader counts are varints; reserve 3 bytes (up to 2^21
                    // entries) written as a padded varint.
                    self.dst.put_slice(&[0x80, 0x80, 0x00]);
                }
            }
        }
        self.count += 1;
        // The checks above make these casts lossless.
        match self.transport {
            Transport::TTHeader => {
                self.dst.put_u16(key_len as u16);
                self.dst.put_slice(prefix.as_bytes());
                self.dst.put_slice(key.as_bytes());
                self.dst.put_u16(value.len() as u16);
                self.dst.put_slice(value);
            }
            _ => {
                put_varint(self.dst, key_len as u32);
                self.dst.put_slice(prefix.as_bytes());
                self.dst.put_slice(key.as_bytes());
                put_varint(self.dst, value.len() as u32);
                self.dst.put_slice(value);
            }
        }
    }

    fn finish_strings(&mut self) {
        if let Some(at) = self.count_at.take() {
            match self.transport {
                Transport::TTHeader => {
                    self.dst[at..at + 2].copy_from_slice(&(self.count as u16).to_be_bytes());
                }
                _ => {
                    let n = self.count;
                    self.dst[at] = 0x80 | (n & 0x7f) as u8;
                    self.dst[at + 1] = 0x80 | ((n >> 7) & 0x7f) as u8;
                    self.dst[at + 2] = ((n >> 14) & 0x7f) as u8;
                }
            }
        }
    }

    /// Write the integer-keyed block (TTHeader only; ignored for THeader).
    pub fn ints(&mut self, ints: &[(u16, &[u8])]) {
        self.finish_strings();
        if self.transport != Transport::TTHeader || ints.is_empty() || self.overflow.is_some() {
            return;
        }
        let fits = Overflow::check("int count", ints.len(), TTHEADER_MAX_U16).and_then(|()| {
            ints.iter().try_for_each(|(_, v)| {
                Overflow::check("int value length", v.len(), TTHEADER_MAX_U16)
            })
        });
        if let Err(o) = fits {
            self.overflow = Some(o);
            return;
        }
        self.dst.put_u8(INFO_INT_KEY_VALUE);
        self.dst.put_u16(ints.len() as u16);
        for (k, v) in ints {
            self.dst.put_u16(*k);
            self.dst.put_u16(v.len() as u16);
            self.dst.put_slice(v);
        }
    }
}

fn put_varint(dst: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        dst.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    dst.put_u8(n as u8);
}

/// Start a frame: reserve the length, write the header (the closure adds
/// key/values), and leave `dst` ready for the message. `inner_framed` puts
/// a second length between a header and the message, as Kitex's "TTHeader
/// framed" does. A header the transport cannot carry makes
/// [`finish_frame`] fail.
pub fn begin_frame(
    dst: &mut BytesMut,
    transport: Transport,
    protocol: Protocol,
    seq_id: i32,
    flags: u16,
    inner_framed: bool,
    headers: impl FnOnce(&mut HeaderWriter<'_>),
) -> FrameMark {
    let start = dst.len();
    let mut inner = None;
    let mut overflow = None;
    match transport {
        Transport::Buffered => {}
        Transport::Framed => dst.put_u32(0),
        Transport::TTHeader | Transport::THeader | Transport::FramedTHeader => {
            if transport == Transport::FramedTHeader {
                dst.put_u32(0); // the outer length, patched with the inner
            }
            let start = dst.len();
            // From here on a framed THeader frame is a THeader frame.
            let transport = if transport == Transport::FramedTHeader {
                Transport::THeader
            } else {
                transport
            };
            dst.put_u32(0);
            dst.put_u16(if transport == Transport::TTHeader {
                TTHEADER_MAGIC
            } else {
                THEADER_MAGIC
            });
            dst.put_u16(flags);
            dst.put_i32(seq_id);
            dst.put_u16(0); // header size in words, patched below
            let header_start = dst.len();
            // Protocol id and transform count: a byte each in TTHeader, and
            // one-byte varints in THeader for these small values.
            dst.put_u8(protocol.header_id());
            dst.put_u8(0);
            let mut w = HeaderWriter {
                dst,
                transport,
                count_at: None,
                count: 0,
                overflow: None,
            };
            headers(&mut w);
            w.finish_strings();
            overflow = w.overflow;
            let pad = (4 - (dst.len() - header_start) % 4) % 4;
            dst.put_bytes(0, pad);
            let size = dst.len() - header_start;
            if let Err(o) = Overflow::check("size", size, MAX_HEADER_BYTES) {
                overflow = overflow.or(Some(o));
            }
            let words = (size / 4) as u16;
            dst[start + 12..start + 14].copy_from_slice(&words.to_be_bytes());
            if inner_framed {
                inner = Some(dst.len());
                dst.put_u32(0);
            }
        }
    }
    FrameMark {
        transport,
        start,
        inner,
        overflow,
    }
}

/// Finish a frame started with [`begin_frame`]: patch its length. Fails
/// when the header could not be written whole or the frame is too long;
/// `dst` then holds a partial frame the caller must truncate.
pub fn finish_frame(
    dst: &mut BytesMut,
    mark: FrameMark,
    max_frame_len: usize,
) -> Result<(), ThriftException> {
    if let Some(o) = mark.overflow {
        return Err(o.into_exception());
    }
    if mark.transport == Transport::Buffered {
        return Ok(());
    }
    let len = dst.len() - mark.start - 4;
    // Readers take the length as a positive i32.
    let max_frame_len = max_frame_len.min(i32::MAX as usize);
    if len > max_frame_len {
        return Err(err(
            ProtocolExceptionKind::SizeLimit,
            format!("frame of {len} bytes exceeds the limit of {max_frame_len}"),
        ));
    }
    dst[mark.start..mark.start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    if mark.transport == Transport::FramedTHeader {
        let at = mark.start + 4;
        dst[at..at + 4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
    }
    if let Some(at) = mark.inner {
        let inner = (dst.len() - at - 4) as u32;
        dst[at..at + 4].copy_from_slice(&inner.to_be_bytes());
    }
    Ok(())
}
