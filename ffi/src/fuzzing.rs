//! Entry points for the fuzz targets in `fuzz/`, not a stable API: the raw
//! message walkers behind the C ABI's server and client (the codecs its
//! connections run), reachable without a socket or a C caller.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use weft_core::{ClientCodec, Context, Inbound, Limits, ServerCodec, Status};
use weft_thrift::{Protocol, ThriftClientCodec, Transport};

use crate::raw::{self, Args, FfiServerCodec, Outcome};

/// What the C ABI's server codec made of one frame.
#[derive(Debug)]
pub enum Decoded {
    /// A request: the args struct as the C handler receives it.
    Request {
        /// The encoded args struct.
        args: Bytes,
        /// Its protocol.
        protocol: Protocol,
    },
    /// A frame answered with an error.
    Rejected,
    /// A one-way frame dropped.
    Discarded,
}

/// The C ABI's server codec, for one connection.
#[derive(Debug)]
pub struct Server(FfiServerCodec);

impl Server {
    /// A codec bounded by `limits`.
    pub fn new(limits: &Limits) -> Server {
        Server(FfiServerCodec::new(limits))
    }

    /// Take the next frame off `src`, as the connection does.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, Status> {
        Ok(self.0.decode(src)?.map(|inbound| match inbound {
            Inbound::Request { req, .. } => Decoded::Request {
                args: req.message.bytes,
                protocol: req.message.protocol,
            },
            Inbound::Reject(..) => Decoded::Rejected,
            Inbound::Discard(_) => Decoded::Discarded,
        }))
    }
}

/// The C ABI's client codec.
#[derive(Debug)]
pub struct Client(ThriftClientCodec<Args, Outcome>);

impl Client {
    /// A codec for `transport` and `protocol`, bounded by `limits`.
    pub fn new(transport: Transport, protocol: Protocol, limits: &Limits) -> Client {
        Client(ThriftClientCodec::new(transport, protocol, limits))
    }

    /// Take one response frame off `src`: its sequence id and bytes.
    pub fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<(i32, Bytes)>, Status> {
        self.0.decode_frame(src)
    }

    /// Decode a response frame for the call `cx`: the result struct as the
    /// C caller receives it, and where a declared exception lies in it.
    pub fn decode(
        &self,
        cx: &mut Context,
        frame: Bytes,
    ) -> Result<(Bytes, DeclaredException), Status> {
        match self.0.decode(cx, frame)? {
            Outcome::Result { bytes, exception } => Ok((bytes, exception)),
            Outcome::Exception { .. } => Err(Status::internal("a client never decodes this")),
        }
    }
}

/// Whether `bytes` is exactly one struct in `protocol`: the check the C
/// ABI runs on every struct a C caller hands it.
pub fn validate_struct(protocol: Protocol, bytes: &Bytes) -> Result<(), Status> {
    raw::validate_struct(protocol, bytes, "struct")
}

/// A declared exception in a decoded result: its field id and where its
/// bytes lie.
pub type DeclaredException = Option<(i16, Range<usize>)>;
