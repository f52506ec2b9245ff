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

mod skip;

pub(crate) use skip::Walker;

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

// ===== binary =====

const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// `TBinaryProtocol` input over a received frame: strict or non-strict
/// message headers, every length checked.
///
/// One value decodes one message: besides the frame's own bounds, the
/// containers it declares are charged against
/// [`DecodeLimits::max_decoded_size`] at an estimated in-memory size per
/// element, as generated decoders reserve that much up front. Containers
/// that are skipped are charged too: the estimate errs on the safe side.
pub struct BinaryInput<'a> {
    buf: &'a mut Bytes,
    guard: Guard,
}

impl std::fmt::Debug for BinaryInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryInput")
            .field("remaining", &self.buf.len())
            .field("depth", &self.guard.depth)
            .finish()
    }
}

impl<'a> BinaryInput<'a> {
    /// Decode from `buf`, consuming what is read.
    pub fn new(buf: &'a mut Bytes, limits: DecodeLimits) -> Self {
        BinaryInput {
            buf,
            guard: Guard::new(limits),
        }
    }

    fn need(&self, n: usize, what: &str) -> Result<(), ThriftException> {
        if self.buf.remaining() < n {
            Err(eof(what))
        } else {
            Ok(())
        }
    }

    fn len_prefixed(&mut self, what: &str) -> Result<Bytes, ThriftException> {
        let len = self.read_i32()?;
        if len < 0 {
            return Err(negative(what, len as i64));
        }
        take(self.buf, len as usize, what)
    }
}

length_protocol!(BinaryInput, 3, 5, 6, 4);

impl TInputProtocol for BinaryInput<'_> {
    type Buf = Bytes;

    fn read_message_begin(&mut self) -> Result<TMessageIdentifier, ThriftException> {
        let first = self.read_i32()?;
        if first < 0 {
            if (first as u32) & VERSION_MASK != VERSION_1 {
                return Err(new_protocol_exception(
                    ProtocolExceptionKind::BadVersion,
                    format!("bad binary protocol version {:#x}", first as u32),
                ));
            }
            let kind = message_type((first & 0xff) as u8)?;
            let name = utf8(self.len_prefixed("method name")?)?;
            let seq = self.read_i32()?;
            Ok(TMessageIdentifier::new(name, kind, seq))
        } else {
            // Non-strict (old) header: name length, name, type byte, seqid.
            let name = utf8(take(self.buf, first as usize, "method name")?)?;
            let kind = message_type(self.read_byte()?)?;
            let seq = self.read_i32()?;
            Ok(TMessageIdentifier::new(name, kind, seq))
        }
    }

    fn read_message_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_struct_begin(&mut self) -> Result<Option<TStructIdentifier>, ThriftException> {
        self.guard.enter()?;
        Ok(None)
    }

    fn read_struct_end(&mut self) -> Result<(), ThriftException> {
        self.guard.leave();
        Ok(())
    }

    fn read_field_begin(&mut self) -> Result<TFieldIdentifier, ThriftException> {
        let t = self.read_byte()?;
        if t == 0 {
            return Ok(TFieldIdentifier::new(None, TType::Stop, None));
        }
        let t = ttype(t)?;
        let id = self.read_i16()?;
        Ok(TFieldIdentifier::new(None, t, id))
    }

    fn read_field_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_bool(&mut self) -> Result<bool, ThriftException> {
        Ok(self.read_byte()? != 0)
    }

    fn read_bytes(&mut self) -> Result<Bytes, ThriftException> {
        self.len_prefixed("binary")
    }

    fn read_uuid(&mut self) -> Result<[u8; 16], ThriftException> {
        self.need(16, "uuid")?;
        let mut u = [0u8; 16];
        self.buf.copy_to_slice(&mut u);
        Ok(u)
    }

    fn read_i8(&mut self) -> Result<i8, ThriftException> {
        self.need(1, "i8")?;
        Ok(self.buf.get_i8())
    }

    fn read_i16(&mut self) -> Result<i16, ThriftException> {
        self.need(2, "i16")?;
        Ok(self.buf.get_i16())
    }

    fn read_i32(&mut self) -> Result<i32, ThriftException> {
        self.need(4, "i32")?;
        Ok(self.buf.get_i32())
    }

    fn read_i64(&mut self) -> Result<i64, ThriftException> {
        self.need(8, "i64")?;
        Ok(self.buf.get_i64())
    }

    fn read_double(&mut self) -> Result<f64, ThriftException> {
        self.need(8, "double")?;
        Ok(self.buf.get_f64())
    }

    fn read_string(&mut self) -> Result<String, ThriftException> {
        Ok(self.read_faststr()?.to_string())
    }

    fn read_faststr(&mut self) -> Result<FastStr, ThriftException> {
        utf8(self.len_prefixed("string")?)
    }

    fn read_list_begin(&mut self) -> Result<TListIdentifier, ThriftException> {
        let t = element(ttype(self.read_byte()?)?)?;
        let n = self.read_i32()? as i64;
        let size = self.guard.container(
            Protocol::Binary,
            n,
            min_size(Protocol::Binary, t),
            mem_size(t),
            self.buf.remaining(),
        )?;
        Ok(TListIdentifier::new(t, size))
    }

    fn read_list_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_set_begin(&mut self) -> Result<TSetIdentifier, ThriftException> {
        let l = self.read_list_begin()?;
        Ok(TSetIdentifier::new(l.element_type, l.size))
    }

    fn read_set_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_map_begin(&mut self) -> Result<TMapIdentifier, ThriftException> {
        let k = element(ttype(self.read_byte()?)?)?;
        let v = element(ttype(self.read_byte()?)?)?;
        let n = self.read_i32()? as i64;
        let min = min_size(Protocol::Binary, k) + min_size(Protocol::Binary, v);
        let size = self.guard.container(
            Protocol::Binary,
            n,
            min,
            mem_size(k) + mem_size(v),
            self.buf.remaining(),
        )?;
        Ok(TMapIdentifier::new(k, v, size))
    }

    fn read_map_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn skip_till_depth(&mut self, t: TType, depth: i8) -> Result<usize, ThriftException> {
        let n = skip::skip_len(
            self.buf,
            Protocol::Binary,
            t,
            self.guard.skip_depth(depth),
            self.guard.limits,
        )?;
        self.buf.advance(n);
        Ok(n)
    }

    fn read_byte(&mut self) -> Result<u8, ThriftException> {
        self.need(1, "byte")?;
        Ok(self.buf.get_u8())
    }

    fn read_bytes_vec(&mut self) -> Result<Vec<u8>, ThriftException> {
        Ok(self.read_bytes()?.to_vec())
    }

    fn get_bytes(&mut self, ptr: Option<*const u8>, len: usize) -> Result<Bytes, ThriftException> {
        unknown_fields_unsupported(ptr)?;
        take(self.buf, len, "unknown field")
    }

    fn buf(&mut self) -> &mut Self::Buf {
        self.buf
    }
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

// ===== compact =====

/// The compact protocol's id byte, first on the wire of every message.
pub const COMPACT_PROTOCOL_ID: u8 = 0x82;
const COMPACT_VERSION: u8 = 1;

fn compact_ttype(b: u8) -> Result<TType, ThriftException> {
    Ok(match b {
        0 => TType::Stop,
        1 | 2 => TType::Bool,
        3 => TType::I8,
        4 => TType::I16,
        5 => TType::I32,
        6 => TType::I64,
        7 => TType::Double,
        8 => TType::Binary,
        9 => TType::List,
        10 => TType::Set,
        11 => TType::Map,
        12 => TType::Struct,
        13 => TType::Uuid,
        _ => return Err(bad_type(b)),
    })
}

/// `TCompactProtocol` input over a received frame, every length checked and
/// containers charged to a decoded-size budget as in [`BinaryInput`].
pub struct CompactInput<'a> {
    buf: &'a mut Bytes,
    guard: Guard,
    last_field_id: i16,
    field_ids: SmallVec<[i16; 16]>,
    pending_bool: Option<bool>,
}

impl std::fmt::Debug for CompactInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactInput")
            .field("remaining", &self.buf.len())
            .field("depth", &self.guard.depth)
            .finish()
    }
}

impl<'a> CompactInput<'a> {
    /// Decode from `buf`, consuming what is read.
    pub fn new(buf: &'a mut Bytes, limits: DecodeLimits) -> Self {
        CompactInput {
            buf,
            guard: Guard::new(limits),
            last_field_id: 0,
            field_ids: SmallVec::new(),
            pending_bool: None,
        }
    }

    fn varint(&mut self, max_bytes: u32, what: &str) -> Result<u64, ThriftException> {
        let mut out: u64 = 0;
        for i in 0..max_bytes {
            if !self.buf.has_remaining() {
                return Err(eof(what));
            }
            let b = self.buf.get_u8();
            if i == 9 && b > 1 {
                // The tenth byte holds bit 63 only; more would be lost.
                return Err(new_protocol_exception(
                    ProtocolExceptionKind::InvalidData,
                    format!("varint overflows 64 bits in {what}"),
                ));
            }
            out |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(new_protocol_exception(
            ProtocolExceptionKind::InvalidData,
            format!("varint too long in {what}"),
        ))
    }

    fn read_u32_varint(&mut self, what: &str) -> Result<u32, ThriftException> {
        let v = self.varint(5, what)?;
        u32::try_from(v).map_err(|_| {
            new_protocol_exception(
                ProtocolExceptionKind::InvalidData,
                format!("varint overflows 32 bits in {what}"),
            )
        })
    }

    fn len_prefixed(&mut self, what: &str) -> Result<Bytes, ThriftException> {
        let len = self.read_u32_varint(what)? as i32;
        if len < 0 {
            return Err(negative(what, len as i64));
        }
        take(self.buf, len as usize, what)
    }

    fn collection(&mut self) -> Result<(TType, usize), ThriftException> {
        let header = self.read_byte()?;
        let t = element(compact_ttype(header & 0x0f)?)?;
        let mut n = (header >> 4) as i64;
        if n == 15 {
            n = self.read_u32_varint("collection size")? as i32 as i64;
        }
        let size = self.guard.container(
            Protocol::Compact,
            n,
            min_size(Protocol::Compact, t),
            mem_size(t),
            self.buf.remaining(),
        )?;
        Ok((t, size))
    }
}

length_protocol!(CompactInput, 1, 1, 2, 1);

impl TInputProtocol for CompactInput<'_> {
    type Buf = Bytes;

    fn read_message_begin(&mut self) -> Result<TMessageIdentifier, ThriftException> {
        let id = self.read_byte()?;
        if id != COMPACT_PROTOCOL_ID {
            return Err(new_protocol_exception(
                ProtocolExceptionKind::BadVersion,
                format!("expected compact protocol id 0x82, got {id:#x}"),
            ));
        }
        let vt = self.read_byte()?;
        if vt & 0x1f != COMPACT_VERSION {
            return Err(new_protocol_exception(
                ProtocolExceptionKind::BadVersion,
                format!("unsupported compact protocol version {}", vt & 0x1f),
            ));
        }
        let kind = message_type((vt >> 5) & 0x07)?;
        let seq = self.read_u32_varint("sequence id")? as i32;
        let name = utf8(self.len_prefixed("method name")?)?;
        Ok(TMessageIdentifier::new(name, kind, seq))
    }

    fn read_message_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_struct_begin(&mut self) -> Result<Option<TStructIdentifier>, ThriftException> {
        self.guard.enter()?;
        self.field_ids.push(self.last_field_id);
        self.last_field_id = 0;
        Ok(None)
    }

    fn read_struct_end(&mut self) -> Result<(), ThriftException> {
        self.guard.leave();
        self.last_field_id = self.field_ids.pop().unwrap_or(0);
        Ok(())
    }

    fn read_field_begin(&mut self) -> Result<TFieldIdentifier, ThriftException> {
        let header = self.read_byte()?;
        let kind = header & 0x0f;
        if kind == 0 {
            return Ok(TFieldIdentifier::new(None, TType::Stop, None));
        }
        let t = compact_ttype(kind)?;
        let delta = header >> 4;
        let id = if delta != 0 {
            self.last_field_id.wrapping_add(delta as i16)
        } else {
            self.read_i16()?
        };
        self.last_field_id = id;
        if t == TType::Bool {
            self.pending_bool = Some(kind == 1);
        }
        Ok(TFieldIdentifier::new(None, t, id))
    }

    fn read_field_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_bool(&mut self) -> Result<bool, ThriftException> {
        match self.pending_bool.take() {
            Some(b) => Ok(b),
            // Inside containers a bool is a byte: 1 true, anything else false.
            None => Ok(self.read_byte()? == 1),
        }
    }

    fn read_bytes(&mut self) -> Result<Bytes, ThriftException> {
        self.len_prefixed("binary")
    }

    fn read_uuid(&mut self) -> Result<[u8; 16], ThriftException> {
        if self.buf.remaining() < 16 {
            return Err(eof("uuid"));
        }
        let mut u = [0u8; 16];
        self.buf.copy_to_slice(&mut u);
        Ok(u)
    }

    fn read_i8(&mut self) -> Result<i8, ThriftException> {
        Ok(self.read_byte()? as i8)
    }

    fn read_i16(&mut self) -> Result<i16, ThriftException> {
        let v = self.varint(3, "i16")?;
        let v = u16::try_from(v).map_err(|_| eof("i16"))?;
        Ok(((v >> 1) as i16) ^ -((v & 1) as i16))
    }

    fn read_i32(&mut self) -> Result<i32, ThriftException> {
        let v = self.read_u32_varint("i32")?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    fn read_i64(&mut self) -> Result<i64, ThriftException> {
        let v = self.varint(10, "i64")?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn read_double(&mut self) -> Result<f64, ThriftException> {
        if self.buf.remaining() < 8 {
            return Err(eof("double"));
        }
        Ok(self.buf.get_f64_le())
    }

    fn read_string(&mut self) -> Result<String, ThriftException> {
        Ok(self.read_faststr()?.to_string())
    }

    fn read_faststr(&mut self) -> Result<FastStr, ThriftException> {
        utf8(self.len_prefixed("string")?)
    }

    fn read_list_begin(&mut self) -> Result<TListIdentifier, ThriftException> {
        let (t, size) = self.collection()?;
        Ok(TListIdentifier::new(t, size))
    }

    fn read_list_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_set_begin(&mut self) -> Result<TSetIdentifier, ThriftException> {
        let (t, size) = self.collection()?;
        Ok(TSetIdentifier::new(t, size))
    }

    fn read_set_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn read_map_begin(&mut self) -> Result<TMapIdentifier, ThriftException> {
        let n = self.read_u32_varint("map size")? as i32 as i64;
        if n == 0 {
            return Ok(TMapIdentifier::new(TType::Stop, TType::Stop, 0));
        }
        let types = self.read_byte()?;
        let k = element(compact_ttype(types >> 4)?)?;
        let v = element(compact_ttype(types & 0x0f)?)?;
        let min = min_size(Protocol::Compact, k) + min_size(Protocol::Compact, v);
        let size = self.guard.container(
            Protocol::Compact,
            n,
            min,
            mem_size(k) + mem_size(v),
            self.buf.remaining(),
        )?;
        Ok(TMapIdentifier::new(k, v, size))
    }

    fn read_map_end(&mut self) -> Result<(), ThriftException> {
        Ok(())
    }

    fn skip_till_depth(&mut self, t: TType, depth: i8) -> Result<usize, ThriftException> {
        // A bool field's value came with its header.
        if t == TType::Bool && self.pending_bool.take().is_some() {
            return Ok(0);
        }
        let n = skip::skip_len(
            self.buf,
            Protocol::Compact,
            t,
            self.guard.skip_depth(depth),
            self.guard.limits,
        )?;
        self.buf.advance(n);
        Ok(n)
    }

    fn read_byte(&mut self) -> Result<u8, ThriftException> {
        if !self.buf.has_remaining() {
            return Err(eof("byte"));
        }
        Ok(self.buf.get_u8())
    }

    fn read_bytes_vec(&mut self) -> Result<Vec<u8>, ThriftException> {
        Ok(self.read_bytes()?.to_vec())
    }

    fn get_bytes(&mut self, ptr: Option<*const u8>, len: usize) -> Result<Bytes, ThriftException> {
        unknown_fields_unsupported(ptr)?;
        take(self.buf, len, "unknown field")
    }

    fn buf(&mut self) -> &mut Self::Buf {
        self.buf
    }
}

// ===== compact output =====

/// pilota's `TCompactOutputProtocol` with the specification's little-endian
/// doubles: pilota 0.13 writes them big-endian (while reading little-endian),
/// which Apache Thrift peers misread. Everything else is delegated.
pub struct CompactOutput<'a> {
    inner: pilota::thrift::compact::TCompactOutputProtocol<&'a mut bytes::BytesMut>,
}

impl std::fmt::Debug for CompactOutput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompactOutput")
    }
}

impl<'a> CompactOutput<'a> {
    /// Encode into `dst`.
    pub fn new(dst: &'a mut bytes::BytesMut) -> Self {
        CompactOutput {
            inner: pilota::thrift::compact::TCompactOutputProtocol::new(dst, false),
        }
    }
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            #[inline]
            fn $name(&mut self, $($arg: $ty),*) -> $ret {
                self.inner.$name($($arg),*)
            }
        )*
    };
}

impl TLengthProtocol for CompactOutput<'_> {
    delegate! {
        message_begin_len(id: &TMessageIdentifier) -> usize;
        message_end_len() -> usize;
        struct_begin_len(id: &TStructIdentifier) -> usize;
        struct_end_len() -> usize;
        field_begin_len(t: TType, id: Option<i16>) -> usize;
        field_end_len() -> usize;
        field_stop_len() -> usize;
        bool_len(b: bool) -> usize;
        bytes_len(b: &[u8]) -> usize;
        bytes_vec_len(b: &[u8]) -> usize;
        byte_len(b: u8) -> usize;
        uuid_len(u: [u8; 16]) -> usize;
        i8_len(i: i8) -> usize;
        i16_len(i: i16) -> usize;
        i32_len(i: i32) -> usize;
        i64_len(i: i64) -> usize;
        double_len(d: f64) -> usize;
        string_len(s: &str) -> usize;
        faststr_len(s: &FastStr) -> usize;
        list_begin_len(id: TListIdentifier) -> usize;
        list_end_len() -> usize;
        set_begin_len(id: TSetIdentifier) -> usize;
        set_end_len() -> usize;
        map_begin_len(id: TMapIdentifier) -> usize;
        map_end_len() -> usize;
    }
}

impl pilota::thrift::TOutputProtocol for CompactOutput<'_> {
    type BufMut = bytes::BytesMut;

    fn write_double(&mut self, d: f64) -> Result<(), ThriftException> {
        use bytes::BufMut;
        self.inner.buf_mut().put_f64_le(d);
        Ok(())
    }

    fn buf_mut(&mut self) -> &mut Self::BufMut {
        self.inner.buf_mut()
    }

    delegate! {
        write_message_begin(id: &TMessageIdentifier) -> Result<(), ThriftException>;
        write_message_end() -> Result<(), ThriftException>;
        write_struct_begin(id: &TStructIdentifier) -> Result<(), ThriftException>;
        write_struct_end() -> Result<(), ThriftException>;
        write_field_begin(t: TType, id: i16) -> Result<(), ThriftException>;
        write_field_end() -> Result<(), ThriftException>;
        write_field_stop() -> Result<(), ThriftException>;
        write_bool(b: bool) -> Result<(), ThriftException>;
        write_bytes(b: Bytes) -> Result<(), ThriftException>;
        write_bytes_without_len(b: Bytes) -> Result<(), ThriftException>;
        write_uuid(u: [u8; 16]) -> Result<(), ThriftException>;
        write_bytes_vec(b: &[u8]) -> Result<(), ThriftException>;
        write_byte(b: u8) -> Result<(), ThriftException>;
        write_i8(i: i8) -> Result<(), ThriftException>;
        write_i16(i: i16) -> Result<(), ThriftException>;
        write_i32(i: i32) -> Result<(), ThriftException>;
        write_i64(i: i64) -> Result<(), ThriftException>;
        write_string(s: &str) -> Result<(), ThriftException>;
        write_faststr(s: FastStr) -> Result<(), ThriftException>;
        write_list_begin(id: TListIdentifier) -> Result<(), ThriftException>;
        write_list_end() -> Result<(), ThriftException>;
        write_set_begin(id: TSetIdentifier) -> Result<(), ThriftException>;
        write_set_end() -> Result<(), ThriftException>;
        write_map_begin(id: TMapIdentifier) -> Result<(), ThriftException>;
        write_map_end() -> Result<(), ThriftException>;
        flush() -> Result<(), ThriftException>;
    }
}

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
