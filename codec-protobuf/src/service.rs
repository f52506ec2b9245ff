//! What generated code tells the runtime about a gRPC service: its methods,
//! how to turn a call's body into its request enum, and its response enum
//! into a body. A generated server is then an ordinary
//! `tower::Service<Request<XRequest>, Response = Response<XResponse>>`, so the
//! same middleware wraps Thrift and gRPC services.

use std::{
    fmt,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use weft_core::Status;

use crate::{
    message::{self, Message},
    streaming::{RawStreaming, Streaming},
};

/// The four shapes of a gRPC method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStreaming,
    /// One request, a stream of responses.
    ServerStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl MethodKind {
    /// Whether the client sends exactly one message.
    pub fn one_request(self) -> bool {
        matches!(self, MethodKind::Unary | MethodKind::ServerStreaming)
    }

    /// Whether the server sends exactly one message.
    pub fn one_response(self) -> bool {
        matches!(self, MethodKind::Unary | MethodKind::ClientStreaming)
    }
}

/// One method of a service, as generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodDesc {
    /// The method's name in the `.proto` (`UnaryCall`).
    pub name: &'static str,
    /// Its full path on the wire (`/grpc.testing.TestService/UnaryCall`).
    pub path: &'static str,
    /// Its shape.
    pub kind: MethodKind,
}

/// A service's request enum (one variant per method), generated.
pub trait ServiceRequest: Sized + Send + 'static {
    /// The service's full name (`grpc.testing.TestService`).
    const SERVICE: &'static str;
    /// Its methods; the server refers to them by index.
    const METHODS: &'static [MethodDesc];

    /// The request of method `METHODS[method]`, from its body: one message
    /// for unary and server-streaming methods ([`RequestBody::message`]),
    /// a stream for the others ([`RequestBody::stream`]).
    fn from_body(method: usize, body: RequestBody) -> Result<Self, Status>;
}

/// A service's response enum (one variant per method), generated.
pub trait ServiceResponse: Send + 'static {
    /// Hand the answer to `sink`: [`ResponseSink::message`] for unary and
    /// client-streaming methods, [`ResponseSink::stream`] for the others.
    fn into_sink(self, sink: &mut ResponseSink<'_>) -> Result<(), Status>;
}

/// The body of a call as the server received it.
// Moved once per call: boxing the stream would cost an allocation for it.
#[allow(clippy::large_enum_variant)]
pub enum RequestBody {
    /// The one request message, not yet decoded.
    Message(Bytes),
    /// The request messages as they arrive.
    Stream(RawStreaming),
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Message(b) => f.debug_tuple("Message").field(&b.len()).finish(),
            RequestBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl RequestBody {
    /// Decode the one request message.
    pub fn message<M: Message>(self) -> Result<M, Status> {
        match self {
            RequestBody::Message(b) => message::decode(b),
            RequestBody::Stream(_) => Err(Status::internal(
                "a streaming body where one message was expected",
            )),
        }
    }

    /// The request messages, decoded as they are read.
    pub fn stream<M: Message>(self) -> Result<Streaming<M>, Status> {
        match self {
            RequestBody::Stream(s) => Ok(Streaming::new(s)),
            RequestBody::Message(_) => Err(Status::internal(
                "one message where a streaming body was expected",
            )),
        }
    }
}

/// A stream of messages to send, each encoded as it is taken.
pub type ResponseStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send + 'static>>;

/// Where a [`ServiceResponse`] puts its answer.
pub struct ResponseSink<'a> {
    pub(crate) one: &'a mut BytesMut,
    pub(crate) stream: Option<EncodeStream>,
}

impl fmt::Debug for ResponseSink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSink")
            .field("message_len", &self.one.len())
            .field("stream", &self.stream.is_some())
            .finish()
    }
}

impl<'a> ResponseSink<'a> {
    pub(crate) fn new(one: &'a mut BytesMut) -> ResponseSink<'a> {
        ResponseSink { one, stream: None }
    }

    /// The one response message.
    pub fn message<M: Message>(&mut self, m: &M) -> Result<(), Status> {
        message::encode_into(m, self.one);
        Ok(())
    }

    /// The response messages, sent as the stream yields them, as fast as
    /// the peer reads them.
    pub fn stream<M, S>(&mut self, s: S) -> Result<(), Status>
    where
        M: Message + Send,
        S: Stream<Item = Result<M, Status>> + Send + 'static,
    {
        self.stream = Some(EncodeStream(Box::pin(Encoding { inner: s })));
        Ok(())
    }
}

/// A response stream with its message type erased: it encodes each
/// message into the buffer it is given.
pub(crate) struct EncodeStream(Pin<Box<dyn PollEncode + Send>>);

impl EncodeStream {
    /// The next message, appended to `dst`; `None` at the end.
    pub(crate) fn poll_encode(
        &mut self,
        cx: &mut TaskContext<'_>,
        dst: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        self.0.as_mut().poll_encode(cx, dst)
    }
}

trait PollEncode {
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        dst: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>>;
}

pin_project_lite::pin_project! {
    struct Encoding<S> {
        #[pin]
        inner: S,
    }
}

impl<M: Message, S: Stream<Item = Result<M, Status>>> PollEncode for Encoding<S> {
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        dst: &mut BytesMut,
    ) -> Poll<Option<Result<(), Status>>> {
        self.project().inner.poll_next(cx).map(|item| {
            item.map(|r| {
                r.map(|m| {
                    message::encode_into(&m, dst);
                })
            })
        })
    }
}
