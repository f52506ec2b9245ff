//! Transports: framed, buffered (unframed), Apache THeader and Kitex TTHeader;
//! detecting which one a peer speaks from its first bytes; splitting frames
//! off a read buffer without copying; and writing frames with their headers.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use faststr::FastStr;
use pilota::thrift::{new_protocol_exception, ProtocolExceptionKind, ThriftException};
use smallvec::SmallVec;

use crate::protocol::{DecodeLimits, Protocol, Walker, COMPACT_PROTOCOL_ID};

/// Kitex / Volo TTHeader magic.
pub const TTHEADER_MAGIC: u16 = 0x1000;
/// Apache Thrift THeader magic.
pub const THEADER_MAGIC: u16 = 0x0FFF;

/// TTHeader info id: string key/values.
const INFO_KEY_VALUE: u8 = 0x01;
/// TTHeader info id: integer-keyed values.
const INFO_INT_KEY_VALUE: u8 = 0x10;
/// TTHeader info id: an ACL token.
const INFO_ACL_TOKEN: u8 = 0x11;

/// Integer header keys Kitex and Volo use.
pub mod int_key {
    /// The caller's service name.
    pub const FROM_SERVICE: u16 = 3;
    /// The callee's service name.
    pub const TO_SERVICE: u16 = 6;
    /// The method called.
    pub const TO_METHOD: u16 = 9;
    /// The callee's address.
    pub const DEST_ADDRESS: u16 = 11;
    /// The caller's remaining timeout, in milliseconds.
    pub const RPC_TIMEOUT: u16 = 12;
    /// Always "3" from Kitex clients.
    pub const WITH_HEADER: u16 = 16;
    /// The connect timeout, in milliseconds.
    pub const CONN_TIMEOUT: u16 = 17;
    /// The message type of a response.
    pub const MSG_TYPE: u16 = 22;
}

/// Prefixes Kitex's metainfo puts on string headers, by scope.
pub mod prefix {
    /// Transient: next hop only.
    pub const TRANSIENT: &str = "RPC_TRANSIT_";
    /// Persistent: every hop.
    pub const PERSISTENT: &str = "RPC_PERSIST_";
    /// Backward: callee to caller.
    pub const BACKWARD: &str = "RPC_BACKWARD_";
}

/// How messages are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A 4-byte big-endian length, then the message (`TFramedTransport`).
    Framed,
    /// The message alone (`TBufferedTransport`); its end is found by parsing it.
    Buffered,
    /// Kitex's TTHeader (magic 0x1000): length, header with sequence id,
    /// protocol and metainfo, then the message.
    TTHeader,
    /// Apache Thrift's THeader (magic 0x0FFF), TTHeader's ancestor.
    THeader,
}

/// The header of a TTHeader or THeader frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Sequence id in the header.
    pub seq_id: i32,
    /// Flags, echoed back.
    pub flags: u16,
    /// String key/values (inline up to four: no allocation for the usual few).
    pub strings: SmallVec<[(FastStr, FastStr); 4]>,
    /// Integer-keyed values (TTHeader only).
    pub ints: SmallVec<[(u16, FastStr); 8]>,
}

impl Header {
    /// The string value for `key`.
    pub fn string(&self, key: &str) -> Option<&FastStr> {
        self.strings.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The integer-keyed value for `key`.
    pub fn int(&self, key: u16) -> Option<&FastStr> {
        self.ints.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// One delimited message.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its transport.
    pub transport: Transport,
    /// Its protocol.
    pub protocol: Protocol,
    /// The header, for THeader and TTHeader frames.
    pub header: Option<Header>,
    /// The Thrift message: envelope then struct, a slice of the read buffer.
    pub payload: Bytes,
    /// The header's payload carried its own 4-byte length, as Kitex's and
    /// Volo's default "TTHeader framed" codec sends it.
    pub inner_framed: bool,
}

fn err(kind: ProtocolExceptionKind, msg: impl Into<FastStr>) -> ThriftException {
    new_protocol_exception(kind, msg)
}

/// Work out transport and protocol from a connection's first bytes.
/// `Ok(None)` means more bytes are needed.
pub fn detect(buf: &[u8]) -> Result<Option<(Transport, Protocol)>, ThriftException> {
    if buf.len() < 2 {
        return Ok(None);
    }
    // Unframed messages start with their protocol's signature.
    if buf[0] == 0x80 && buf[1] == 0x01 {
        return Ok(Some((Transport::Buffered, Protocol::Binary)));
    }
    if buf[0] == COMPACT_PROTOCOL_ID && buf[1] & 0x1f == 1 {
        return Ok(Some((Transport::Buffered, Protocol::Compact)));
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    let first = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let magic = u16::from_be_bytes([buf[4], buf[5]]);
    match magic {
        TTHEADER_MAGIC => return Ok(Some((Transport::TTHeader, Protocol::Binary))),
        THEADER_MAGIC => return Ok(Some((Transport::THeader, Protocol::Binary))),
        0x8001 => return Ok(Some((Transport::Framed, Protocol::Binary))),
        _ => {}
    }
    if buf[4] == COMPACT_PROTOCOL_ID && buf[5] & 0x1f == 1 {
        return Ok(Some((Transport::Framed, Protocol::Compact)));
    }
    if first > 0 {
        // Non-strict binary: a name length. Framed if what follows is itself
        // a small length (0x00 high byte); unframed if it is the name's text.
        return Ok(Some(if buf[4] == 0 {
            (Transport::Framed, Protocol::Binary)
        } else {
            (Transport::Buffered, Protocol::Binary)
        }));
    }
    Err(err(
        ProtocolExceptionKind::BadVersion,
        format!("not a Thrift message: first bytes {:02x?}", &buf[..8]),
    ))
}

/// The length of the frame of `transport` at the front of `src`, including
/// any length prefix, or `None` if it has not all arrived.
pub fn frame_len(
    src: &[u8],
    transport: Transport,
    protocol: Protocol,
    max_frame_len: usize,
    limits: DecodeLimits,
) -> Result<Option<usize>, ThriftException> {
    if transport == Transport::Buffered {
        // Walked from the start on every call: a connection that reads a
        // large unframed message in pieces keeps a `Walker` across reads
        // instead, as the server codec does.
        return Walker::message(protocol, max_frame_len, limits).message_len(src);
    }
    if src.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
    if len <= 0 {
        return Err(err(
            ProtocolExceptionKind::NegativeSize,
            format!("frame length {len}"),
        ));
    }
    let len = len as usize;
    if len > max_frame_len {
        return Err(err(
            ProtocolExceptionKind::SizeLimit,
            format!("frame of {len} bytes exceeds the limit of {max_frame_len}"),
        ));
    }
    if src.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some(4 + len))
}

/// Parse a whole frame delimited by [`frame_len`]: its header, and the
/// message as a slice of it.
pub fn parse_frame(
    mut raw: Bytes,
    transport: Transport,
    protocol: Protocol,
    limits: DecodeLimits,
) -> Result<Frame, ThriftException> {
    if transport == Transport::Buffered {
        return Ok(Frame {
            transport,
            protocol,
            header: None,
            payload: raw,
            inner_framed: false,
        });
    }
    raw.advance(4);
    if transport == Transport::Framed {
        return Ok(Frame {
            transport,
            protocol,
            header: None,
            payload: raw,
            inner_framed: false,
        });
    }
    let (transport, protocol, header) = read_header(&mut raw, limits.max_header_entries)?;
    let inner_framed = is_inner_framed(&raw);
    if inner_framed {
        raw.advance(4);
    }
    Ok(Frame {
        transport,
        protocol,
        header: Some(header),
        payload: raw,
        inner_framed,
    })
}

/// Whether a header's payload starts with its own length followed by a
/// message: a non-strict binary message cannot look like that, since its
/// name would have to be as long as the rest of the frame.
fn is_inner_framed(payload: &[u8]) -> bool {
    payload.len() >= 6
        && u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
            == payload.len() - 4
        && ((payload[4] == 0x80 && payload[5] == 0x01)
            || (payload[4] == COMPACT_PROTOCOL_ID && payload[5] & 0x1f == 1))
}

/// Split one frame of `transport` off the front of `src` and parse it.
pub fn split_frame(
    src: &mut BytesMut,
    transport: Transport,
    protocol: Protocol,
    max_frame_len: usize,
    limits: DecodeLimits,
) -> Result<Option<Frame>, ThriftException> {
    match frame_len(src, transport, protocol, max_frame_len, limits)? {
        Some(n) => parse_frame(src.split_to(n).freeze(), transport, protocol, limits).map(Some),
        None => {
            if transport != Transport::Buffered && src.len() >= 4 {
                // Grow towards the declared length, but never more than twice
                // what actually arrived: a peer that states 16 MiB and sends
                // eight bytes does not get 16 MiB of our memory.
                let want = 4 + u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
                let grant = want.min((2 * src.len()).max(64 * 1024));
                src.reserve(grant.saturating_sub(src.len()));
            }
            Ok(None)
        }
    }
}

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

fn read_header(
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
        Transport::TTHeader | Transport::THeader => {
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
    if let Some(at) = mark.inner {
        let inner = (dst.len() - at - 4) as u32;
        dst[at..at + 4].copy_from_slice(&inner.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_frame(magic: u16, words: u16, header: &[u8], payload: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        let len = 10 + header.len() + payload.len();
        b.put_u32(len as u32);
        b.put_u16(magic);
        b.put_u16(0);
        b.put_i32(7);
        b.put_u16(words);
        b.put_slice(header);
        b.put_slice(payload);
        b.freeze()
    }

    #[test]
    fn lying_header_lengths_are_errors_not_panics() {
        for magic in [TTHEADER_MAGIC, THEADER_MAGIC] {
            // Header size beyond the frame.
            let f = header_frame(magic, 0xffff, &[0, 0, 0, 0], b"");
            assert!(parse_frame(
                f,
                Transport::TTHeader,
                Protocol::Binary,
                DecodeLimits::default()
            )
            .is_err());
            // A key/value block whose key length runs past the header.
            let f = header_frame(magic, 2, &[0, 0, 1, 0, 1, 0xff], &[0xff, 0]);
            assert!(parse_frame(
                f,
                Transport::TTHeader,
                Protocol::Binary,
                DecodeLimits::default()
            )
            .is_err());
            // An unknown protocol id.
            let f = header_frame(magic, 1, &[9, 0, 0, 0], b"");
            assert!(parse_frame(
                f,
                Transport::TTHeader,
                Protocol::Binary,
                DecodeLimits::default()
            )
            .is_err());
        }
        // Transforms are refused rather than misread.
        let f = header_frame(TTHEADER_MAGIC, 1, &[0, 1, 1, 0], b"");
        assert!(parse_frame(
            f,
            Transport::TTHeader,
            Protocol::Binary,
            DecodeLimits::default()
        )
        .is_err());
    }

    #[test]
    fn random_headers_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let magic = if i % 2 == 0 {
                TTHEADER_MAGIC
            } else {
                THEADER_MAGIC
            };
            let n = (next() % 48) as usize;
            let header: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            let words = (next() % 16) as u16;
            let f = header_frame(magic, words, &header, b"\x80\x01");
            // Ok or a typed error; what matters is that it returns.
            let _ = parse_frame(
                f,
                Transport::TTHeader,
                Protocol::Binary,
                DecodeLimits::default(),
            );
        }
    }

    fn header_of(
        transport: Transport,
        f: impl FnOnce(&mut HeaderWriter<'_>),
    ) -> Result<BytesMut, ThriftException> {
        let mut dst = BytesMut::new();
        let mark = begin_frame(&mut dst, transport, Protocol::Binary, 1, 0, false, f);
        dst.put_u8(0);
        finish_frame(&mut dst, mark, 1 << 24).map(|()| dst)
    }

    #[test]
    fn header_fields_wider_than_the_wire_are_refused() {
        let long = "x".repeat(65_536);
        let e = header_of(Transport::TTHeader, |w| w.string("", "k", &long)).unwrap_err();
        assert!(e.to_string().contains("value length of 65536"), "{e}");
        let e = header_of(Transport::TTHeader, |w| w.string("p", &long[1..], "v")).unwrap_err();
        assert!(e.to_string().contains("key length"), "{e}");
        let e = header_of(Transport::TTHeader, |w| {
            w.ints(&[(int_key::TO_METHOD, long.as_bytes())])
        })
        .unwrap_err();
        assert!(e.to_string().contains("int value length"), "{e}");
        // 65,536 entries: the count would wrap to zero.
        let e = header_of(Transport::TTHeader, |w| {
            for _ in 0..65_536 {
                w.string("", "", "");
            }
        })
        .unwrap_err();
        assert!(e.to_string().contains("string count"), "{e}");
        // Each field fits but the header outgrows its 16-bit size in words.
        let e = header_of(Transport::THeader, |w| {
            for _ in 0..5 {
                w.string("", "k", &long);
            }
        })
        .unwrap_err();
        assert!(e.to_string().contains("header size"), "{e}");
        // The largest that fits still round-trips.
        let max = "x".repeat(65_535);
        let mut buf = header_of(Transport::TTHeader, |w| w.string("", "k", &max)).unwrap();
        let f = split_frame(
            &mut buf,
            Transport::TTHeader,
            Protocol::Binary,
            1 << 24,
            DecodeLimits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.header.unwrap().string("k").unwrap().len(), 65_535);
    }

    #[test]
    fn header_entries_are_bounded() {
        let limits = DecodeLimits::default();
        let max = limits.max_header_entries;
        for transport in [Transport::TTHeader, Transport::THeader] {
            for (strings, ints, ok) in [(max, 0, true), (max + 1, 0, false), (max - 1, 2, false)] {
                let mut buf = header_of(transport, |w| {
                    for i in 0..strings {
                        w.string("k", &i.to_string(), "v");
                    }
                    let ints: Vec<(u16, &[u8])> =
                        (0..ints).map(|i| (i as u16, &b"1"[..])).collect();
                    w.ints(&ints);
                })
                .unwrap();
                let got = split_frame(&mut buf, transport, Protocol::Binary, 1 << 24, limits);
                // THeader carries no int block, so only its strings count.
                let ok = ok || (transport == Transport::THeader && strings <= max);
                match got {
                    Ok(f) => {
                        assert!(ok, "{transport:?} {strings}+{ints} accepted");
                        assert_eq!(f.unwrap().header.unwrap().strings.len(), strings);
                    }
                    Err(e) => {
                        assert!(!ok, "{transport:?} {strings}+{ints}: {e}");
                        assert!(e.to_string().contains("more than 1024"), "{e}");
                    }
                }
            }
        }
    }
}
