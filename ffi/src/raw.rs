//! Messages the shim carries without knowing their types: an already encoded
//! Thrift args struct out, an encoded result struct back.
//!
//! The caller's own Thrift library encodes the `method_args` struct and
//! decodes the `method_result` struct; Weft writes and reads the envelope and
//! the transport around them. Bytes from C are walked once with Weft's
//! bounded input protocols before they go on the wire, so garbage is refused
//! at the boundary with a typed error instead of reaching a peer.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use pilota::thrift::{
    TInputProtocol, TLengthProtocol, TOutputProtocol, TStructIdentifier, TType, ThriftException,
};
use weft_core::{Inbound, Limits, Response, ServerCodec, Status};
use weft_thrift::{
    BinaryInput, CompactInput, DecodeLimits, EntryMessage, Protocol, Reply, ThriftServerCodec,
};

/// An encoded args struct, in `protocol`.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) bytes: Bytes,
    /// The protocol of `bytes`: set by [`FfiServerCodec`] on the server,
    /// the client's own protocol on the client.
    pub(crate) protocol: Protocol,
}

/// What a call answers with: the encoded result struct, or (on the server
/// only) a declared exception to wrap in one.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A whole result struct, as the caller's Thrift library reads it.
    Result {
        bytes: Bytes,
        /// The field id and byte range of a declared exception set in it
        /// (a struct field other than 0, `success`).
        exception: Option<(i16, Range<usize>)>,
    },
    /// A declared exception: the exception struct and its field id in the
    /// method's result struct.
    Exception { id: i16, bytes: Bytes },
}

/// The struct at the front of `p`'s buffer, as a slice of it.
fn capture<P: TInputProtocol<Buf = Bytes>>(p: &mut P) -> Result<Bytes, ThriftException> {
    let start = p.buf().clone();
    p.skip(TType::Struct)?;
    let used = start.len() - p.buf().len();
    Ok(start.slice(..used))
}

/// The result struct at the front of `p`'s buffer, and which declared
/// exception it holds, if any.
fn capture_result<P: TInputProtocol<Buf = Bytes>>(p: &mut P) -> Result<Outcome, ThriftException> {
    let start = p.buf().clone();
    let total = start.len();
    let mut exception = None;
    p.read_struct_begin()?;
    loop {
        let f = p.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        let at = total - p.buf().len();
        p.skip(f.field_type)?;
        let end = total - p.buf().len();
        match f.id {
            Some(id) if id != 0 && f.field_type == TType::Struct && exception.is_none() => {
                exception = Some((id, at..end));
            }
            _ => {}
        }
        p.read_field_end()?;
    }
    p.read_struct_end()?;
    let used = total - p.buf().len();
    Ok(Outcome::Result {
        bytes: start.slice(..used),
        exception,
    })
}

/// Check that `bytes` is exactly one struct in `protocol`, within the
/// default decode limits.
pub(crate) fn validate_struct(protocol: Protocol, bytes: &Bytes, what: &str) -> Result<(), Status> {
    let mut buf = bytes.clone();
    let limits = DecodeLimits::default();
    let walked = match protocol {
        Protocol::Binary => BinaryInput::new(&mut buf, limits).skip(TType::Struct),
        Protocol::Compact => CompactInput::new(&mut buf, limits).skip(TType::Struct),
    };
    if let Err(e) = walked {
        return Err(Status::invalid_argument(format!(
            "{what} is not a Thrift {} struct: {e}",
            protocol_name(protocol)
        )));
    }
    if !buf.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} has {} bytes after the end of its {} struct",
            buf.len(),
            protocol_name(protocol)
        )));
    }
    Ok(())
}

pub(crate) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Binary => "binary",
        Protocol::Compact => "compact",
    }
}

impl EntryMessage for Args {
    fn encode<P: TOutputProtocol>(&self, p: &mut P) -> Result<(), ThriftException> {
        p.write_bytes_without_len(self.bytes.clone())
    }

    fn decode<P: TInputProtocol<Buf = Bytes>>(
        p: &mut P,
        _service: &str,
        _method: &str,
    ) -> Result<Self, ThriftException> {
        Ok(Args {
            bytes: capture(p)?,
            // Replaced by `FfiServerCodec`, which knows the connection's.
            protocol: Protocol::Binary,
        })
    }

    fn size<P: TLengthProtocol>(&self, _p: &mut P) -> usize {
        self.bytes.len()
    }
}

impl EntryMessage for Outcome {
    fn encode<P: TOutputProtocol>(&self, p: &mut P) -> Result<(), ThriftException> {
        match self {
            Outcome::Result { bytes, .. } => p.write_bytes_without_len(bytes.clone()),
            Outcome::Exception { id, bytes } => {
                p.write_struct_begin(&TStructIdentifier { name: "result" })?;
                p.write_field_begin(TType::Struct, *id)?;
                p.write_bytes_without_len(bytes.clone())?;
                p.write_field_end()?;
                p.write_field_stop()?;
                p.write_struct_end()
            }
        }
    }

    fn decode<P: TInputProtocol<Buf = Bytes>>(
        p: &mut P,
        _service: &str,
        _method: &str,
    ) -> Result<Self, ThriftException> {
        capture_result(p)
    }

    fn size<P: TLengthProtocol>(&self, _p: &mut P) -> usize {
        match self {
            Outcome::Result { bytes, .. } => bytes.len(),
            Outcome::Exception { bytes, .. } => bytes.len() + 16,
        }
    }
}

/// Thrift's server codec over raw messages, recording in each request the
/// protocol its connection speaks, which the C handler must answer in.
#[derive(Debug)]
pub(crate) struct FfiServerCodec {
    inner: ThriftServerCodec<Args, Outcome>,
}

impl FfiServerCodec {
    pub(crate) fn new(limits: &Limits) -> Self {
        FfiServerCodec {
            inner: ThriftServerCodec::new(limits),
        }
    }
}

impl ServerCodec for FfiServerCodec {
    type Req = Args;
    type Resp = Outcome;
    type Reply = Reply;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound<Args, Reply>>, Status> {
        let mut inbound = self.inner.decode(src)?;
        if let (Some(Inbound::Request { req, .. }), Some((_, protocol))) =
            (&mut inbound, self.inner.detected())
        {
            req.message.protocol = protocol;
        }
        Ok(inbound)
    }

    fn ordered(&self) -> bool {
        self.inner.ordered()
    }

    fn encode(
        reply: Reply,
        result: Result<Response<Outcome>, Status>,
        closing: bool,
        dst: &mut BytesMut,
    ) -> Result<(), Status> {
        ThriftServerCodec::<Args, Outcome>::encode(reply, result, closing, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilota::thrift::binary::TBinaryProtocol;
    use weft_thrift::protocol::CompactInput;

    fn result_with_exception(protocol: Protocol) -> Bytes {
        // An exception struct { 1: i32 code = 7 } in field 1.
        let exc = match protocol {
            Protocol::Binary => vec![8, 0, 1, 0, 0, 0, 7, 0],
            Protocol::Compact => vec![0x15, 14, 0],
        };
        let mut dst = BytesMut::new();
        let outcome = Outcome::Exception {
            id: 1,
            bytes: Bytes::from(exc),
        };
        match protocol {
            Protocol::Binary => outcome.encode(&mut TBinaryProtocol::new(&mut dst, false)),
            Protocol::Compact => {
                outcome.encode(&mut weft_thrift::protocol::CompactOutput::new(&mut dst))
            }
        }
        .unwrap();
        dst.freeze()
    }

    #[test]
    fn a_declared_exception_is_found_in_the_result_struct() {
        for protocol in [Protocol::Binary, Protocol::Compact] {
            let bytes = result_with_exception(protocol);
            validate_struct(protocol, &bytes, "result").unwrap();
            let mut buf = bytes.clone();
            let got = match protocol {
                Protocol::Binary => {
                    capture_result(&mut BinaryInput::new(&mut buf, DecodeLimits::default()))
                }
                Protocol::Compact => {
                    capture_result(&mut CompactInput::new(&mut buf, DecodeLimits::default()))
                }
            }
            .unwrap();
            let Outcome::Result {
                bytes: all,
                exception: Some((1, range)),
            } = got
            else {
                panic!("{protocol:?}: no exception found: {got:?}");
            };
            assert_eq!(all, bytes);
            let exc = all.slice(range);
            validate_struct(protocol, &exc, "exception").unwrap();
        }
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        let ok = Bytes::from_static(&[8, 0, 1, 0, 0, 0, 7, 0]);
        validate_struct(Protocol::Binary, &ok, "args").unwrap();
        for bad in [
            &[8, 0, 1, 0][..],
            &[8, 0, 1, 0, 0, 0, 7, 0, 0][..],
            &[0xff, 1][..],
            &[][..],
        ] {
            let e = validate_struct(Protocol::Binary, &Bytes::copy_from_slice(bad), "args")
                .unwrap_err();
            assert_eq!(e.code(), weft_core::Code::InvalidArgument, "{bad:?}");
        }
    }
}
