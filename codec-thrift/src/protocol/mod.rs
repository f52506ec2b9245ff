//! Bounded, zero-copy input protocols (binary and compact) implementing
//! pilota's `TInputProtocol`, so pilota-generated types decode through them.
//!
//! pilota's own input protocols trust lengths from the wire (a negative or
//! oversized length panics in `split_to`) and do not check UTF-8. These check
//! every length against the bytes left in the frame and against [`DecodeLimits`]
//! before anything is allocated, reject unknown type ids, bound nesting depth,
//! and validate strings. Strings and binaries are slices of the received frame.
//!
//! Output goes through pilota's `TBinaryProtocol` and `TCompactOutputProtocol`
//! on a `BytesMut`: encoding our own values needs no such defence.

use bytes::{Buf, Bytes};
use faststr::FastStr;
use pilota::thrift::{
    new_protocol_exception, ProtocolExceptionKind, TFieldIdentifier, TInputProtocol,
    TLengthProtocol, TListIdentifier, TMapIdentifier, TMessageIdentifier, TMessageType,
    TSetIdentifier, TStructIdentifier, TType, ThriftException,
};
use smallvec::SmallVec;
use weft_core::Limits;

/// Which Thrift protocol encodes the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `TBinaryProtocol` (strict on write, strict or not on read).
    Binary,
    /// `TCompactProtocol`.
    Compact,
}

impl Protocol {
    /// The protocol id TTHeader and THeader carry.
    pub fn header_id(self) -> u8 {
        match self {
            Protocol::Binary => 0,
            Protocol::Compact => 2,
        }
    }

    /// The protocol for a TTHeader / THeader protocol id.
    pub fn from_header_id(id: u8) -> Option<Protocol> {
        match id {
            0 => Some(Protocol::Binary),
            2 => Some(Protocol::Compact),
            _ => None,
        }
    }
}

/// The decoder-side bounds taken from [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Elements one container may declare.
    pub max_container_len: usize,
    /// Struct nesting depth.
    pub max_depth: usize,
    /// Key/values one TTHeader or THeader header may carry.
    pub max_header_entries: usize,
    /// Estimated memory one decoded message may claim; see [`BinaryInput`].
    pub max_decoded_size: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::from(&Limits::default())
    }
}

impl From<&Limits> for DecodeLimits {
    fn from(l: &Limits) -> Self {
        DecodeLimits {
            max_container_len: l.max_container_len,
            max_depth: l.max_depth,
            max_header_entries: l.max_header_entries,
            max_decoded_size: l.max_decoded_size,
        }
    }
}

pub(crate) fn eof(what: &str) -> ThriftException {
    new_protocol_exception(
        ProtocolExceptionKind::InvalidData,
        format!("frame ends inside {what}"),
    )
}

fn bad_type(t: u8) -> ThriftException {
    new_protocol_exception(
        ProtocolExceptionKind::InvalidData,
        format!("unknown type id {t}"),
    )
}

fn negative(what: &str, n: i64) -> ThriftException {
    new_protocol_exception(
        ProtocolExceptionKind::NegativeSize,
        format!("negative {what} length {n}"),
    )
}

fn ttype(b: u8) -> Result<TType, ThriftException> {
    match TType::try_from(b) {
        Ok(TType::Void) | Err(_) => Err(bad_type(b)),
        Ok(t) => Ok(t),
    }
}

/// A container's element type: `STOP` only ends a struct's fields, and a
/// list of it would have elements that occupy no bytes.
fn element(t: TType) -> Result<TType, ThriftException> {
    if t == TType::Stop {
        return Err(new_protocol_exception(
            ProtocolExceptionKind::InvalidData,
            "STOP is not a container element type",
        ));
    }
    Ok(t)
}

/// Fewest bytes one value of `t` occupies in `protocol`: a container that
/// declares more elements than the frame could hold is rejected up front,
/// before a `Vec::with_capacity` trusts its count.
fn min_size(protocol: Protocol, t: TType) -> usize {
    match (protocol, t) {
        (_, TType::Bool | TType::I8 | TType::Struct | TType::Stop | TType::Void) => 1,
        (_, TType::Double) => 8,
        (_, TType::Uuid) => 16,
        (Protocol::Binary, TType::I16) => 2,
        (Protocol::Binary, TType::I32 | TType::Binary) => 4,
        (Protocol::Binary, TType::I64) => 8,
        (Protocol::Binary, TType::List | TType::Set) => 5,
        (Protocol::Binary, TType::Map) => 6,
        (Protocol::Compact, _) => 1,
    }
}

/// Estimated bytes one decoded element of `t` occupies in memory, as the
/// collections generated code builds: scalars their width; strings and
/// binaries a `FastStr`/`Bytes` handle (their text is a slice of the frame,
/// already counted by the frame limit); a struct 64 (a typical small one);
/// a nested container its `Vec`/map header. Rough on purpose: the point is
/// that a compact `list<struct>` at a byte per element on the wire cannot
/// make a decoder reserve gigabytes.
fn mem_size(t: TType) -> usize {
    match t {
        TType::Bool | TType::I8 | TType::Stop | TType::Void => 1,
        TType::I16 => 2,
        TType::I32 => 4,
        TType::I64 | TType::Double => 8,
        TType::Uuid => 16,
        TType::Binary => 32,
        TType::List | TType::Set | TType::Map => 32,
        TType::Struct => 64,
    }
}

/// Depth, container and decoded-size bounds for one message.
struct Guard {
    depth: usize,
    /// Estimated bytes the message may still claim (see [`mem_size`]).
    budget: usize,
    limits: DecodeLimits,
}

impl Guard {
    fn new(limits: DecodeLimits) -> Self {
        Guard {
            depth: 0,
            budget: limits.max_decoded_size,
            limits,
        }
    }

    /// Charge a container of `size` elements of `elem_mem` bytes each.
    fn charge(&mut self, size: usize, elem_mem: usize) -> Result<(), ThriftException> {
        let cost = size.saturating_mul(elem_mem);
        self.budget = self.budget.checked_sub(cost).ok_or_else(|| {
            new_protocol_exception(
                ProtocolExceptionKind::SizeLimit,
                format!(
                    "container of {size} elements would exceed the decoded size limit of {} bytes",
                    self.limits.max_decoded_size
                ),
            )
        })?;
        Ok(())
    }

    fn enter(&mut self) -> Result<(), ThriftException> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(new_protocol_exception(
                ProtocolExceptionKind::DepthLimit,
                format!("nesting deeper than {}", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    /// How deep a skipped value may nest: what pilota allows, within
    /// what is left of our own limit.
    fn skip_depth(&self, depth: i8) -> usize {
        (depth.max(0) as usize).min(self.limits.max_depth.saturating_sub(self.depth))
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Check a declared container against the limits, the bytes left and
    /// the decoded-size budget, which it is charged to.
    fn container(
        &mut self,
        protocol: Protocol,
        size: i64,
        elem_min: usize,
        elem_mem: usize,
        remaining: usize,
    ) -> Result<usize, ThriftException> {
        if size < 0 {
            return Err(negative("container", size));
        }
        let size = size as usize;
        if size > self.limits.max_container_len {
            return Err(new_protocol_exception(
                ProtocolExceptionKind::SizeLimit,
                format!(
                    "container of {size} elements exceeds the limit of {}",
                    self.limits.max_container_len
                ),
            ));
        }
        if size.saturating_mul(elem_min) > remaining {
            return Err(new_protocol_exception(
                ProtocolExceptionKind::SizeLimit,
                format!(
                    "{protocol:?} container declares {size} elements but only {remaining} bytes remain"
                ),
            ));
        }
        self.charge(size, elem_mem)?;
        Ok(size)
    }
}

fn take(buf: &mut Bytes, len: usize, what: &str) -> Result<Bytes, ThriftException> {
    if len > buf.remaining() {
        return Err(eof(what));
    }
    Ok(buf.split_to(len))
}

fn utf8(b: Bytes) -> Result<FastStr, ThriftException> {
    FastStr::from_bytes(b).map_err(|e| {
        new_protocol_exception(
            ProtocolExceptionKind::InvalidData,
            format!("string is not valid UTF-8: {e}"),
        )
    })
}

macro_rules! length_protocol {
    ($ty:ident, $field_begin:expr, $list_begin:expr, $map_begin:expr, $int:expr) => {
        impl TLengthProtocol for $ty<'_> {
            fn message_begin_len(&mut self, id: &TMessageIdentifier) -> usize {
                12 + id.name.len()
            }
            fn message_end_len(&mut self) -> usize {
                0
            }
            fn struct_begin_len(&mut self, _: &TStructIdentifier) -> usize {
                0
            }
            fn struct_end_len(&mut self) -> usize {
                0
            }
            fn field_begin_len(&mut self, _: TType, _: Option<i16>) -> usize {
                $field_begin
            }
            fn field_end_len(&mut self) -> usize {
                0
            }
            fn field_stop_len(&mut self) -> usize {
                1
            }
            fn bool_len(&mut self, _: bool) -> usize {
                1
            }
            fn bytes_len(&mut self, b: &[u8]) -> usize {
                $int + b.len()
            }
            fn bytes_vec_len(&mut self, b: &[u8]) -> usize {
                $int + b.len()
            }
            fn byte_len(&mut self, _: u8) -> usize {
                1
            }
            fn uuid_len(&mut self, _: [u8; 16]) -> usize {
                16
            }
            fn i8_len(&mut self, _: i8) -> usize {
                1
            }
            fn i16_len(&mut self, _: i16) -> usize {
                2
            }
            fn i32_len(&mut self, _: i32) -> usize {
                $int
            }
            fn i64_len(&mut self, _: i64) -> usize {
                8
            }
            fn double_len(&mut self, _: f64) -> usize {
                8
            }
            fn string_len(&mut self, s: &str) -> usize {
                $int + s.len()
            }
            fn faststr_len(&mut self, s: &FastStr) -> usize {
                $int + s.len()
            }
            fn list_begin_len(&mut self, _: TListIdentifier) -> usize {
                $list_begin
            }
            fn list_end_len(&mut self) -> usize {
                0
            }
            fn set_begin_len(&mut self, _: TSetIdentifier) -> usize {
                $list_begin
            }
            fn set_end_len(&mut self) -> usize {
                0
            }
            fn map_begin_len(&mut self, _: TMapIdentifier) -> usize {
                $map_begin
            }
            fn map_end_len(&mut self) -> usize {
                0
            }
        }
    };
}

fn unknown_fields_unsupported(ptr: Option<*const u8>) -> Result<(), ThriftException> {
    if ptr.is_some() {
        // Generated only with pilota's `keep_unknown_fields`, which Weft's
        // codegen does not enable: it would copy through a raw pointer.
        return Err(new_protocol_exception(
            ProtocolExceptionKind::NotImplemented,
            "keeping unknown fields is not supported",
        ));
    }
    Ok(())
}

fn message_type(b: u8) -> Result<TMessageType, ThriftException> {
    TMessageType::try_from(b).map_err(|_| {
        new_protocol_exception(
            ProtocolExceptionKind::InvalidData,
            format!("invalid message type {b}"),
        )
    })
}

mod binary;
mod compact;
mod skip;

pub use binary::BinaryInput;
pub use compact::{CompactInput, CompactOutput, COMPACT_PROTOCOL_ID};
pub(crate) use skip::Walker;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pilota::thrift::{
        binary::TBinaryProtocol, compact::TCompactOutputProtocol, TOutputProtocol,
    };

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    #[test]
    fn binary_round_trips_scalars_and_message() {
        let mut out = BytesMut::new();
        {
            let mut p = TBinaryProtocol::new(&mut out, false);
            p.write_message_begin(&TMessageIdentifier::new(
                "Echo".into(),
                TMessageType::Call,
                7,
            ))
            .unwrap();
            p.write_i64(-5).unwrap();
            p.write_double(1.5).unwrap();
            p.write_faststr("héllo".into()).unwrap();
            p.write_bytes(Bytes::from(vec![7u8; 1000])).unwrap();
        }
        let mut b = out.freeze();
        let base = b.as_ptr() as usize;
        let mut p = BinaryInput::new(&mut b, limits());
        let m = p.read_message_begin().unwrap();
        assert_eq!((m.name.as_str(), m.sequence_number), ("Echo", 7));
        assert_eq!(p.read_i64().unwrap(), -5);
        assert_eq!(p.read_double().unwrap(), 1.5);
        assert_eq!(p.read_faststr().unwrap(), "héllo");
        let bin = p.read_bytes().unwrap();
        assert_eq!(bin.len(), 1000);
        // Zero copy: the binary points into the frame.
        let at = bin.as_ptr() as usize;
        assert!(at > base && at < base + 64);
    }

    #[test]
    fn compact_round_trips_fields_and_bools() {
        let mut out = BytesMut::new();
        {
            let mut p = TCompactOutputProtocol::new(&mut out, false);
            p.write_struct_begin(&TStructIdentifier { name: "S" })
                .unwrap();
            p.write_field_begin(TType::Bool, 1).unwrap();
            p.write_bool(true).unwrap();
            p.write_field_end().unwrap();
            p.write_field_begin(TType::I32, 20).unwrap();
            p.write_i32(-300).unwrap();
            p.write_field_end().unwrap();
            p.write_field_begin(TType::List, 21).unwrap();
            p.write_list_begin(TListIdentifier::new(TType::Bool, 2))
                .unwrap();
            p.write_bool(false).unwrap();
            p.write_bool(true).unwrap();
            p.write_list_end().unwrap();
            p.write_field_end().unwrap();
            p.write_field_stop().unwrap();
            p.write_struct_end().unwrap();
        }
        let mut b = out.freeze();
        let mut p = CompactInput::new(&mut b, limits());
        p.read_struct_begin().unwrap();
        let f = p.read_field_begin().unwrap();
        assert_eq!((f.field_type, f.id), (TType::Bool, Some(1)));
        assert!(p.read_bool().unwrap());
        let f = p.read_field_begin().unwrap();
        assert_eq!((f.field_type, f.id), (TType::I32, Some(20)));
        assert_eq!(p.read_i32().unwrap(), -300);
        let f = p.read_field_begin().unwrap();
        assert_eq!(f.id, Some(21));
        let l = p.read_list_begin().unwrap();
        assert_eq!(l.size, 2);
        assert!(!p.read_bool().unwrap());
        assert!(p.read_bool().unwrap());
        assert_eq!(p.read_field_begin().unwrap().field_type, TType::Stop);
        p.read_struct_end().unwrap();
        assert!(b.is_empty());
    }

    #[test]
    fn compact_doubles_are_little_endian() {
        let mut out = BytesMut::new();
        CompactOutput::new(&mut out).write_double(1.0).unwrap();
        assert_eq!(&out[..], &1.0f64.to_le_bytes());
        let mut b = out.freeze();
        assert_eq!(
            CompactInput::new(&mut b, limits()).read_double().unwrap(),
            1.0
        );
    }

    #[test]
    fn rejects_hostile_lengths() {
        // Negative string length.
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe, b'a']);
        assert!(BinaryInput::new(&mut b, limits()).read_faststr().is_err());
        // A list declaring 2^31-1 i32s in a 6-byte frame.
        let mut b = Bytes::from_static(&[8, 0x7f, 0xff, 0xff, 0xff, 0]);
        let err = BinaryInput::new(&mut b, limits())
            .read_list_begin()
            .unwrap_err();
        assert!(err.to_string().contains("SizeLimit"), "{err}");
        // Compact list of 2^31-1 elements.
        let mut b = Bytes::from_static(&[0xf5, 0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(CompactInput::new(&mut b, limits())
            .read_list_begin()
            .is_err());
        // Unknown type id.
        let mut b = Bytes::from_static(&[0x42, 0, 1]);
        assert!(BinaryInput::new(&mut b, limits())
            .read_field_begin()
            .is_err());
        // Invalid UTF-8.
        let mut b = Bytes::from_static(&[0, 0, 0, 2, 0xc3, 0x28]);
        assert!(BinaryInput::new(&mut b, limits()).read_faststr().is_err());
        // Varint that never ends.
        let mut b = Bytes::from_static(&[0xff; 12]);
        assert!(CompactInput::new(&mut b, limits()).read_i64().is_err());
    }

    #[test]
    fn depth_is_bounded_in_decode_and_skip() {
        // 10,000 nested structs: field 1 of type struct, over and over.
        let mut raw = Vec::new();
        for _ in 0..10_000 {
            raw.extend_from_slice(&[12, 0, 1]);
        }
        let mut b = Bytes::from(raw);
        let mut p = BinaryInput::new(&mut b, limits());
        let err = p.skip(TType::Struct).unwrap_err();
        assert!(err.to_string().contains("DepthLimit"), "{err}");
    }

    #[test]
    fn decoded_size_is_budgeted_per_message() {
        // A compact list of 10M empty structs: a byte each on the wire, well
        // within the container and frame bounds, but 10M structs in memory.
        let n: u32 = 10_000_000;
        let mut raw = vec![0xfc];
        let mut v = n;
        while v >= 0x80 {
            raw.push((v as u8) | 0x80);
            v >>= 7;
        }
        raw.push(v as u8);
        raw.resize(raw.len() + n as usize, 0);
        let mut b = Bytes::from(raw);
        let err = CompactInput::new(&mut b, limits())
            .read_list_begin()
            .unwrap_err();
        assert!(err.to_string().contains("decoded size"), "{err}");

        // The budget is spent across containers of one message.
        let small = DecodeLimits {
            max_decoded_size: 1000,
            ..limits()
        };
        let list = |n: u8| [8u8, 0, 0, 0, n];
        let mut raw = Vec::new();
        for _ in 0..3 {
            raw.extend_from_slice(&list(100));
            raw.extend_from_slice(&[0; 400]);
        }
        let mut b = Bytes::from(raw);
        let mut p = BinaryInput::new(&mut b, small);
        for _ in 0..2 {
            // 100 i32s: 400 of the 1000 bytes.
            assert_eq!(p.read_list_begin().unwrap().size, 100);
            for _ in 0..100 {
                p.read_i32().unwrap();
            }
        }
        let err = p.read_list_begin().unwrap_err();
        assert!(err.to_string().contains("decoded size"), "{err}");
    }

    #[test]
    fn stop_elements_and_overlong_varints_are_errors() {
        // Binary list, set and map of STOP.
        for raw in [
            &[0u8, 0, 0, 0, 5][..],
            &[0, 8, 0, 0, 0, 1],
            &[8, 0, 0, 0, 0, 1],
        ] {
            let mut b = Bytes::copy_from_slice(raw);
            let mut p = BinaryInput::new(&mut b, limits());
            let e = if raw.len() == 5 {
                p.read_list_begin().map(|_| ())
            } else {
                p.read_map_begin().map(|_| ())
            };
            assert!(e.unwrap_err().to_string().contains("STOP"), "{raw:?}");
        }
        // Compact list of five STOPs, and a map of STOP to i32.
        let mut b = Bytes::from_static(&[0x50]);
        assert!(CompactInput::new(&mut b, limits())
            .read_list_begin()
            .is_err());
        let mut b = Bytes::from_static(&[0x01, 0x05, 0]);
        assert!(CompactInput::new(&mut b, limits())
            .read_map_begin()
            .is_err());
        // Ten bytes whose last carries more than bit 63.
        let mut raw = vec![0xff; 9];
        raw.push(0x7f);
        let mut b = Bytes::from(raw);
        let e = CompactInput::new(&mut b, limits()).read_i64().unwrap_err();
        assert!(e.to_string().contains("64 bits"), "{e}");
        // i64::MIN zigzags to u64::MAX: ten bytes, the last 0x01.
        let mut raw = vec![0xff; 9];
        raw.push(0x01);
        let mut b = Bytes::from(raw);
        assert_eq!(
            CompactInput::new(&mut b, limits()).read_i64().unwrap(),
            i64::MIN
        );
    }
}
