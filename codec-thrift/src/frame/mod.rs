//! Transports: framed, buffered (unframed), Apache THeader and Kitex TTHeader;
//! detecting which one a peer speaks from its first bytes; splitting frames
//! off a read buffer without copying; and writing frames with their headers.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use faststr::FastStr;
use pilota::thrift::{new_protocol_exception, ProtocolExceptionKind, ThriftException};
use smallvec::SmallVec;

use crate::protocol::{DecodeLimits, Protocol, Walker, COMPACT_PROTOCOL_ID};

mod detect;
mod header;

pub use detect::detect;
use detect::is_inner_framed;
use header::read_header;
pub use header::{begin_frame, finish_frame, FrameMark, HeaderWriter};

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
    /// THeader frames each inside a 4-byte frame: what Apache's header
    /// protocol sends over `TFramedTransport` (its C++ and Python servers
    /// answer the same way). The server tells it from the first bytes.
    FramedTHeader,
}

impl Transport {
    /// Whether frames carry a THeader or TTHeader header (a sequence id,
    /// metainfo), so answers may come in any order.
    pub fn has_header(self) -> bool {
        matches!(
            self,
            Transport::TTHeader | Transport::THeader | Transport::FramedTHeader
        )
    }

    /// Where the header's magic starts in a frame: after the length, and
    /// after the outer length of a [`Transport::FramedTHeader`] frame.
    pub(crate) fn header_at(self) -> usize {
        if self == Transport::FramedTHeader {
            8
        } else {
            4
        }
    }
}

/// The header of a TTHeader or THeader frame.
///
/// Its key/values stay where they arrived, in the frame's bytes, checked
/// once when the frame was read (bounds, entry count, UTF-8 of string
/// entries) and found again when asked for: reading a frame makes no
/// string of its own, and a `Header` is small enough to move for free.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Sequence id in the header.
    pub seq_id: i32,
    /// Flags, echoed back.
    pub flags: u16,
    /// The info blocks, a slice of the frame.
    info: Bytes,
    /// Where each entry starts in `info` ([`header::INT_ENTRY`] set for
    /// int-keyed ones), in wire order.
    index: SmallVec<[u32; 14]>,
    /// THeader's layout (varint lengths) rather than TTHeader's.
    apache: bool,
}

impl Header {
    /// A TTHeader header holding `strings`, as if read off the wire (for
    /// tests and tools; frames are written with [`begin_frame`]).
    pub fn with_strings<'a>(
        seq_id: i32,
        strings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Header {
        let strings: Vec<_> = strings.into_iter().collect();
        let mut info = BytesMut::new();
        let mut index = SmallVec::new();
        info.put_u8(INFO_KEY_VALUE);
        info.put_u16(strings.len() as u16);
        for (k, v) in strings {
            index.push(info.len() as u32);
            info.put_u16(k.len() as u16);
            info.put_slice(k.as_bytes());
            info.put_u16(v.len() as u16);
            info.put_slice(v.as_bytes());
        }
        Header {
            seq_id,
            flags: 0,
            info: info.freeze(),
            index,
            apache: false,
        }
    }

    /// The string value for `key`.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.raw_strings()
            .find(|(k, _)| *k == key.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The integer-keyed value for `key` (TTHeader only), when it is text.
    pub fn int(&self, key: u16) -> Option<&str> {
        self.raw_ints()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The string key/values, in wire order.
    pub fn strings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw_strings()
            .filter_map(|(k, v)| Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?)))
    }

    /// The integer-keyed values that are text, in wire order. Values such
    /// as the message type are raw bytes and are left out.
    pub fn ints(&self) -> impl Iterator<Item = (u16, &str)> {
        self.raw_ints()
            .filter_map(|(k, v)| Some((k, std::str::from_utf8(v).ok()?)))
    }

    /// The string key/values whose key starts with `prefix`, the key
    /// without it, as strings sharing the frame's bytes. Each key and value
    /// is checked as UTF-8 once here (the check [`Header::strings`] and then
    /// [`Header::fast`] would make twice); `read_header` let no other kind
    /// through, so none is dropped.
    pub(crate) fn scoped(
        &self,
        prefix: &'static str,
    ) -> impl Iterator<Item = (FastStr, FastStr)> + '_ {
        self.raw_strings().filter_map(move |(k, v)| {
            let k = k.strip_prefix(prefix.as_bytes())?;
            Some((self.shared(k)?, self.shared(v)?))
        })
    }

    /// Bytes of this header's info block as a string sharing them.
    pub(crate) fn shared(&self, part: &[u8]) -> Option<FastStr> {
        if part.is_empty() {
            return Some(FastStr::empty());
        }
        FastStr::from_bytes(self.info.slice_ref(part)).ok()
    }

    pub(crate) fn raw_strings(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.index.iter().filter_map(|&at| {
            if at & header::INT_ENTRY != 0 {
                return None;
            }
            match header::Entries::entry_at(self.info.get(at as usize..)?, self.apache, false)? {
                header::Entry::String(k, v) => Some((k, v)),
                _ => None,
            }
        })
    }

    /// The integer-keyed values as bytes, in wire order: one walk for a
    /// reader that wants several keys (a lookup per key walks them all).
    pub(crate) fn raw_ints(&self) -> impl Iterator<Item = (u16, &[u8])> {
        self.index.iter().filter_map(|&at| {
            if at & header::INT_ENTRY == 0 {
                return None;
            }
            let at = (at & !header::INT_ENTRY) as usize;
            match header::Entries::entry_at(self.info.get(at..)?, self.apache, true)? {
                header::Entry::Int(k, v) => Some((k, v)),
                _ => None,
            }
        })
    }

    /// `part` (a key or value this header returned) as a string sharing the
    /// frame's bytes, not a copy.
    pub fn fast(&self, part: &str) -> FastStr {
        let (base, at) = (self.info.as_ptr() as usize, part.as_ptr() as usize);
        let inside = at >= base && at + part.len() <= base + self.info.len();
        if inside && !part.is_empty() {
            // `from_bytes` only fails on bytes that are not UTF-8; these
            // came from a `&str`.
            FastStr::from_bytes(self.info.slice_ref(part.as_bytes()))
                .unwrap_or_else(|_| FastStr::new(part))
        } else {
            FastStr::new(part)
        }
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("seq_id", &self.seq_id)
            .field("flags", &self.flags)
            .field("strings", &self.strings().collect::<Vec<_>>())
            .field("ints", &self.ints().collect::<Vec<_>>())
            .finish()
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
    // `raw` is meant to be one delimited frame, but this is public: a
    // shorter one is an error, not a panic.
    if raw.len() < 4 {
        return Err(err(
            ProtocolExceptionKind::InvalidData,
            format!(
                "a {transport:?} frame of {} bytes, shorter than its length",
                raw.len()
            ),
        ));
    }
    raw.advance(4);
    if transport == Transport::FramedTHeader {
        // The inner frame fills the outer one exactly: anything else is not
        // what Apache's header protocol over framed writes.
        let inner = raw
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if inner != Some(raw.len().saturating_sub(4)) {
            return Err(err(
                ProtocolExceptionKind::InvalidData,
                format!(
                    "a framed THeader frame of {} bytes holds an inner frame of {inner:?} bytes",
                    raw.len()
                ),
            ));
        }
        raw.advance(4);
    }
    if transport == Transport::Framed {
        return Ok(Frame {
            transport,
            protocol,
            header: None,
            payload: raw,
            inner_framed: false,
        });
    }
    let (read, protocol, header) = read_header(&mut raw, limits.max_header_entries)?;
    let transport = match (transport, read) {
        (Transport::FramedTHeader, Transport::THeader) => Transport::FramedTHeader,
        (Transport::FramedTHeader, _) => {
            return Err(err(
                ProtocolExceptionKind::InvalidData,
                "a TTHeader frame inside a framed transport",
            ))
        }
        // A header names its own kind: a THeader peer on a TTHeader
        // connection is answered in THeader.
        (_, read) => read,
    };
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

    /// A TTHeader info section: protocol binary, no transforms, a string
    /// block and an int block (one value raw bytes), padded to words.
    fn tt_info(strings: &[(&[u8], &[u8])], ints: &[(u16, &[u8])]) -> (u16, Vec<u8>) {
        let mut h = vec![0u8, 0];
        h.push(INFO_KEY_VALUE);
        h.extend((strings.len() as u16).to_be_bytes());
        for (k, v) in strings {
            h.extend((k.len() as u16).to_be_bytes());
            h.extend(*k);
            h.extend((v.len() as u16).to_be_bytes());
            h.extend(*v);
        }
        h.push(INFO_INT_KEY_VALUE);
        h.extend((ints.len() as u16).to_be_bytes());
        for (k, v) in ints {
            h.extend(k.to_be_bytes());
            h.extend((v.len() as u16).to_be_bytes());
            h.extend(*v);
        }
        while h.len() % 4 != 0 {
            h.push(0);
        }
        ((h.len() / 4) as u16, h)
    }

    #[test]
    fn header_values_are_found_in_the_frame_without_copies() {
        let (words, info) = tt_info(
            &[
                (b"isn", b"Echo"),
                (b"RPC_PERSIST_k", b"v"),
                (b"long", b"a value long enough not to be stored inline"),
            ],
            &[(int_key::MSG_TYPE, &[0xff]), (int_key::RPC_TIMEOUT, b"250")],
        );
        let raw = header_frame(TTHEADER_MAGIC, words, &info, b"payload");
        let f = parse_frame(
            raw.clone(),
            Transport::TTHeader,
            Protocol::Binary,
            DecodeLimits::default(),
        )
        .unwrap();
        let h = f.header.unwrap();
        assert_eq!(h.seq_id, 7);
        assert_eq!(h.string("isn"), Some("Echo"));
        assert_eq!(h.string("nope"), None);
        assert_eq!(h.int(int_key::RPC_TIMEOUT), Some("250"));
        // A raw-byte int value is not text: left out, not an error.
        assert_eq!(h.int(int_key::MSG_TYPE), None);
        assert_eq!(h.strings().count(), 3);
        assert_eq!(
            h.ints().collect::<Vec<_>>(),
            [(int_key::RPC_TIMEOUT, "250")]
        );
        let v = h.fast(h.string("RPC_PERSIST_k").unwrap());
        assert_eq!(v, "v");
        let owned = h.fast("not from the header");
        assert_eq!(owned, "not from the header");
        let long = h.fast(h.string("long").unwrap());
        assert!(raw.as_ptr_range().contains(&long.as_bytes().as_ptr()));
        assert_eq!(&f.payload[..], b"payload");
        assert!(format!("{h:?}").contains("RPC_PERSIST_k"));
    }

    #[test]
    fn header_strings_that_are_not_utf8_are_refused_when_read() {
        let (words, info) = tt_info(&[(b"k", &[0xc3, 0x28])], &[]);
        let raw = header_frame(TTHEADER_MAGIC, words, &info, b"");
        let e = parse_frame(
            raw,
            Transport::TTHeader,
            Protocol::Binary,
            DecodeLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn with_strings_reads_back() {
        let h = Header::with_strings(3, [("a", "1"), ("b", "2")]);
        assert_eq!(h.string("b"), Some("2"));
        assert_eq!(h.strings().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
    }

    /// Found by the `frame` fuzz target: `parse_frame` advanced past the
    /// length prefix of a frame shorter than one.
    #[test]
    fn a_frame_shorter_than_its_length_prefix_is_an_error_not_a_panic() {
        for transport in [
            Transport::Framed,
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
        ] {
            for raw in [&[][..], &[0, 0, 0][..]] {
                let r = parse_frame(
                    Bytes::copy_from_slice(raw),
                    transport,
                    Protocol::Binary,
                    DecodeLimits::default(),
                );
                assert!(r.is_err(), "{transport:?} {raw:?}");
            }
        }
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
                        assert_eq!(f.unwrap().header.unwrap().strings().count(), strings);
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
