//! The contract between a wire protocol and Weft's connections: bytes in,
//! messages out, free of I/O (the transport drives it).

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::{
    context::Context,
    message::{Request, Response},
    status::Status,
};

/// What a server codec found in the read buffer.
// `Request` is the large and the common variant: boxing it would cost an
// allocation per request to save bytes on the rare rejections.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inbound<Req, Reply> {
    /// A request to serve.
    Request {
        /// The request. Its context carries no deadline yet: see `timeout`.
        req: Request<Req>,
        /// What the encoder needs to answer it; `None` for a one-way call,
        /// which gets no answer.
        reply: Option<Reply>,
        /// The time the caller said it has left, as the frame stated it. The
        /// transport turns it into `req.cx.deadline` on its own clock (codecs
        /// keep no clock, so they stay deterministic and fuzzable).
        timeout: Option<Duration>,
    },
    /// A frame that was delimited but cannot be served (unknown method,
    /// malformed arguments): answer it with the status and keep the
    /// connection.
    Reject(Reply, Status),
    /// A one-way frame that was delimited but cannot be served: there is no
    /// one to answer, so the server logs it and reads on.
    Discard(Status),
}

/// The server side of a frame-oriented protocol, one value per connection.
pub trait ServerCodec: Send + 'static {
    /// The decoded request message.
    type Req: Send + 'static;
    /// The response message to encode.
    type Resp: Send + 'static;
    /// Per-request facts the encoder needs: sequence id, framing, protocol.
    type Reply: Clone + Send + 'static;

    /// Take one whole request off the front of `src`, or `Ok(None)` if more
    /// bytes are needed. An `Err` means the stream cannot be resynchronised:
    /// the connection is closed after in-flight responses are written.
    #[allow(clippy::type_complexity)]
    fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Inbound<Self::Req, Self::Reply>>, Status>;

    /// Whether responses must be written in the order requests arrived
    /// (plain framed or buffered Thrift), or may go out as they complete
    /// (TTHeader, where the sequence id correlates them).
    fn ordered(&self) -> bool;

    /// Append the answer to one request, as one frame, to `dst` (the
    /// connection's write buffer, so frames are batched into one write
    /// without a buffer of their own). `closing` says the server is draining
    /// this connection: the frame tells the peer to send no more on it where
    /// the protocol can say so (Kitex's `crrst` header on TTHeader).
    ///
    /// On `Err`, `dst` must be left as it was; the caller encodes the error
    /// instead. A panic is caught by the caller, which truncates `dst`.
    fn encode(
        reply: Self::Reply,
        result: Result<Response<Self::Resp>, Status>,
        closing: bool,
        dst: &mut BytesMut,
    ) -> Result<(), Status>;
}

/// The client side of a frame-oriented protocol, shared by all connections
/// of a client.
pub trait ClientCodec: Send + Sync + 'static {
    /// The request message.
    type Req: Send + Sync + 'static;
    /// The decoded response message.
    type Resp: Send + 'static;

    /// Encode one request as one frame with sequence id `seq_id`.
    fn encode(&self, seq_id: i32, cx: &Context, req: &Self::Req) -> Result<Bytes, Status>;

    /// Take one whole response frame off the front of `src` and return its
    /// sequence id, or `Ok(None)` if more bytes are needed. Runs on the
    /// connection's reader, so it only delimits; [`ClientCodec::decode`]
    /// does the rest on the caller's task.
    fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<(i32, Bytes)>, Status>;

    /// Decode a response frame for the call whose context is `cx`, filling
    /// in what the frame says about the call (backward metainfo).
    fn decode(&self, cx: &mut Context, frame: Bytes) -> Result<Self::Resp, Status>;

    /// Whether a response frame delimited by [`ClientCodec::decode_frame`]
    /// asks the client to send no more on its connection (the server is
    /// draining it: Kitex's `crrst` header). Calls in flight on it still
    /// get their answers; new ones go to a new connection.
    fn closing(&self, frame: &Bytes) -> bool {
        let _ = frame;
        false
    }

    /// What to tell the caller when the server closed a connection before
    /// answering anything on it, which is how many servers treat a frame of
    /// a transport they do not speak; `None` when the codec has no idea.
    fn closed_early_hint(&self) -> Option<&'static str> {
        None
    }

    /// The response of a one-way call, which the server never sends.
    fn oneway_response(&self, cx: &Context) -> Result<Self::Resp, Status> {
        Err(Status::unimplemented(format!(
            "one-way calls are not supported for {}",
            cx.method
        )))
    }
}
