//! `TBinaryProtocol` input.

use super::*;

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
