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

fn text(all: &Bytes, part: &[u8]) -> Result<FastStr, ThriftException> {
    // Slice the frame rather than copy: `part` lies inside `all`.
    let b = all.slice_ref(part);
    FastStr::from_bytes(b).map_err(|_| {
        err(
            ProtocolExceptionKind::InvalidData,
            "header value is not UTF-8",
        )
    })
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
    let all = body.clone();
    let mut c = Cursor { buf: &all[..] };
    let magic = c.u16()?;
    let flags = c.u16()?;
    let seq = c.take(4)?;
    let seq_id = i32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
    let words = c.u16()? as usize;
    let size = words * 4;
    let hdr = c.take(size)?;
    let payload_at = 10 + size;
    let mut h = Cursor { buf: hdr };
    let mut header = Header {
        seq_id,
        flags,
        ..Header::default()
    };
    let transport;
    let protocol_id;
    if magic == TTHEADER_MAGIC {
        transport = Transport::TTHeader;
        protocol_id = h.u8()?;
        let transforms = h.u8()? as usize;
        if transforms > 0 {
            return Err(err(
                ProtocolExceptionKind::NotImplemented,
                "TTHeader transforms are not supported",
            ));
        }
        while !h.buf.is_empty() {
            match h.u8()? {
                0 => {}
                INFO_KEY_VALUE => {
                    let n = h.u16()?;
                    budget.take(n as usize)?;
                    for _ in 0..n {
                        let kl = h.u16()? as usize;
                        let k = h.take(kl)?;
                        let vl = h.u16()? as usize;
                        let v = h.take(vl)?;
                        header.strings.push((text(&all, k)?, text(&all, v)?));
                    }
                }
                INFO_INT_KEY_VALUE => {
                    let n = h.u16()?;
                    budget.take(n as usize)?;
                    for _ in 0..n {
                        let k = h.u16()?;
                        let vl = h.u16()? as usize;
                        let v = h.take(vl)?;
                        // Values such as the message type are raw bytes, not text.
                        if let Ok(v) = text(&all, v) {
                            header.ints.push((k, v));
                        }
                    }
                }
                INFO_ACL_TOKEN => {
                    let l = h.u16()? as usize;
                    h.take(l)?;
                }
                other => {
                    return Err(err(
                        ProtocolExceptionKind::InvalidData,
                        format!("unknown TTHeader info id {other:#x}"),
                    ))
                }
            }
        }
    } else if magic == THEADER_MAGIC {
        transport = Transport::THeader;
        protocol_id = u8::try_from(h.varint()?)
            .map_err(|_| err(ProtocolExceptionKind::InvalidData, "bad protocol id"))?;
        let transforms = h.varint()?;
        if transforms > 0 {
            return Err(err(
                ProtocolExceptionKind::NotImplemented,
                "THeader transforms (zlib) are not supported",
            ));
        }
        'info: while !h.buf.is_empty() {
            match h.varint()? {
                // Padding: the rest of the header is zeros.
                0 => break 'info,
                1 => {
                    let n = h.varint()?;
                    budget.take(n as usize)?;
                    for _ in 0..n {
                        let kl = h.varint()? as usize;
                        let k = h.take(kl)?;
                        let vl = h.varint()? as usize;
                        let v = h.take(vl)?;
                        header.strings.push((text(&all, k)?, text(&all, v)?));
                    }
                }
                // Unknown info blocks end the readable part, as in Apache's reader.
                _ => break 'info,
            }
        }
    } else {
        return Err(err(
            ProtocolExceptionKind::BadVersion,
            format!("unknown header magic {magic:#06x}"),
        ));
    }
    let protocol = Protocol::from_header_id(protocol_id).ok_or_else(|| {
        err(
            ProtocolExceptionKind::NotImplemented,
            format!("unsupported protocol id {protocol_id}"),
        )
    })?;
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
                self.dst.put_slice(value.as_bytes());
            }
            _ => {
                put_varint(self.dst, key_len as u32);
                self.dst.put_slice(prefix.as_bytes());
                self.dst.put_slice(key.as_bytes());
                put_varint(self.dst, value.len() as u32);
                self.dst.put_slice(value.as_bytes());
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
