//! `TCompactProtocol` input, and output with little-endian doubles.

use super::*;

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
