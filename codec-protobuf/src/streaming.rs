//! A stream of received messages, pulled from the HTTP/2 stream only as the
//! consumer asks: flow-control window is given back for what was taken, so
//! a slow consumer stops its sender and memory stays bounded by the window
//! and one message.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{ready, Context as TaskContext, Poll},
};

use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use weft_core::{Code, Status};

use crate::{
    frame::Decoder,
    message::{self, Message},
    metadata,
};

/// Received messages, still encoded.
pub struct RawStreaming {
    /// The response head a client waits for before the body.
    head: Option<h2::client::ResponseFuture>,
    max_recv: usize,
    headers: Option<HeaderMap>,
    recv: Option<h2::RecvStream>,
    decoder: Decoder,
    /// The client side reads the status from the trailers at the end.
    client: bool,
    state: State,
    trailers: Option<HeaderMap>,
    /// The call's deadline (client side).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Stops the task sending the requests when this side goes away
    /// (client side): the stream is then reset, cancelling the call.
    guard: Option<tokio_util::sync::DropGuard>,
    /// The server's byte budget for what this stream holds.
    held: Option<crate::budget::Held>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body,
    Trailers,
    Done,
}

impl fmt::Debug for RawStreaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStreaming")
            .field("client", &self.client)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl RawStreaming {
    pub(crate) fn new(recv: h2::RecvStream, decoder: Decoder, client: bool) -> RawStreaming {
        RawStreaming {
            head: None,
            max_recv: 0,
            headers: None,
            recv: Some(recv),
            decoder,
            client,
            state: State::Body,
            trailers: None,
            deadline: None,
            guard: None,
            held: None,
        }
    }

    /// A client's response still to come: its head is awaited on the first
    /// poll, so a caller can send before the server answers anything.
    pub(crate) fn pending(head: h2::client::ResponseFuture, max_recv: usize) -> RawStreaming {
        RawStreaming {
            head: Some(head),
            max_recv,
            headers: None,
            recv: None,
            decoder: Decoder::new(max_recv, None),
            client: true,
            state: State::Head,
            trailers: None,
            deadline: None,
            guard: None,
            held: None,
        }
    }

    /// The response headers (initial metadata), once they came (client side).
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    /// End with `DEADLINE_EXCEEDED` at `deadline`, cancelling the call.
    pub(crate) fn with_deadline(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        self.deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        self
    }

    /// Charge what arrives to the server's byte budget (server side).
    pub(crate) fn with_budget(mut self, held: crate::budget::Held) -> Self {
        self.held = Some(held);
        self
    }

    /// Cancel the sending side when this ends or is dropped.
    pub(crate) fn with_guard(mut self, guard: tokio_util::sync::DropGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Whether the last message taken came compressed.
    pub fn last_compressed(&self) -> bool {
        self.decoder.last_compressed()
    }

    /// The last message taken's size on the wire, prefix included.
    pub(crate) fn last_wire_len(&self) -> usize {
        self.decoder.last_wire_len()
    }

    /// Take the trailers, once the stream ended (client side).
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// The trailers, once the stream ended (client side).
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// The next message, or `None` at the end of the stream. On the client
    /// side a non-OK status in the trailers comes as the last item.
    pub fn poll_message(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Bytes, Status>>> {
        if self.state != State::Done {
            if let Some(d) = &mut self.deadline {
                if d.as_mut().poll(cx).is_ready() {
                    let e = Status::deadline_exceeded("grpc: deadline exceeded");
                    return Poll::Ready(Some(Err(self.fail(e))));
                }
            }
        }
        loop {
            match self.state {
                State::Done => return Poll::Ready(None),
                State::Head => {
                    let head = self.head.as_mut().expect("a head in State::Head");
                    let response = match ready!(Pin::new(head).poll(cx)) {
                        Ok(r) => r,
                        Err(e) => {
                            let e = h2_status(e);
                            let e = if e.is_refusal() {
                                e
                            } else {
                                e.with_delivery(weft_core::Delivery::MaybeSent)
                            };
                            return Poll::Ready(Some(Err(self.fail(e))));
                        }
                    };
                    self.head = None;
                    let (parts, recv) = response.into_parts();
                    match client_start(parts, recv, self.max_recv) {
                        Err(e) => return Poll::Ready(Some(Err(self.fail(e)))),
                        Ok(Start { headers, body }) => {
                            self.headers = Some(headers);
                            match body {
                                Some((recv, decoder)) => {
                                    self.recv = Some(recv);
                                    self.decoder = decoder;
                                    self.state = State::Body;
                                }
                                None => {
                                    self.state = State::Done;
                                    return Poll::Ready(None);
                                }
                            }
                        }
                    }
                }
                State::Body => {
                    match self.decoder.next() {
                        Ok(Some(m)) => {
                            // Handed on: no longer this stream's to hold.
                            if let (Some(held), Some(recv)) = (&mut self.held, &mut self.recv) {
                                let owed = held.settle();
                                if owed > 0 {
                                    let _ = recv.flow_control().release_capacity(owed);
                                }
                            }
                            return Poll::Ready(Some(Ok(m)));
                        }
                        Ok(None) => {}
                        Err(e) => return Poll::Ready(Some(Err(self.fail(e)))),
                    }
                    let recv = self.recv.as_mut().expect("a body in State::Body");
                    match ready!(recv.poll_data(cx)) {
                        Some(Ok(chunk)) => {
                            let n = chunk.len();
                            // The decoder holds at most one message, bounded
                            // by the limit: the window reopens now, unless
                            // the server's byte budget is spent.
                            let give_back = match &mut self.held {
                                Some(held) => held.received(n),
                                None => n,
                            };
                            if give_back > 0 {
                                let _ = recv.flow_control().release_capacity(give_back);
                            }
                            self.decoder.push(chunk);
                        }
                        Some(Err(e)) => return Poll::Ready(Some(Err(self.fail(h2_status(e))))),
                        None => {
                            if self.decoder.is_mid_message() {
                                let e = Status::internal("grpc: the stream ended inside a message");
                                return Poll::Ready(Some(Err(self.fail(e))));
                            }
                            if !self.client {
                                self.state = State::Done;
                                return Poll::Ready(None);
                            }
                            self.state = State::Trailers;
                        }
                    }
                }
                State::Trailers => {
                    let recv = self.recv.as_mut().expect("a body before the trailers");
                    let trailers = match ready!(recv.poll_trailers(cx)) {
                        Ok(t) => t,
                        Err(e) => return Poll::Ready(Some(Err(self.fail(h2_status(e))))),
                    };
                    self.state = State::Done;
                    let status = match &trailers {
                        Some(t) => metadata::status_from_headers(t),
                        None => Some(Status::internal(
                            "grpc: the server closed the stream without sending trailers",
                        )),
                    };
                    self.trailers = trailers;
                    match status {
                        Some(s) if s.code() != Code::Ok => return Poll::Ready(Some(Err(s))),
                        Some(_) => return Poll::Ready(None),
                        None => {
                            return Poll::Ready(Some(Err(Status::internal(
                                "grpc: trailers without grpc-status",
                            ))))
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: Status) -> Status {
        self.state = State::Done;
        // Reset the stream: the call is over for this side.
        self.guard = None;
        e
    }
}

/// A client's response head, checked.
pub(crate) struct Start {
    pub(crate) headers: HeaderMap,
    /// `None` for a trailers-only response with status OK: no messages.
    pub(crate) body: Option<(h2::RecvStream, Decoder)>,
}

/// Check a response head: HTTP status, trailers-only status, content type,
/// compression; and ready its body.
pub(crate) fn client_start(
    parts: http::response::Parts,
    recv: h2::RecvStream,
    max_recv: usize,
) -> Result<Start, Status> {
    use weft_core::Delivery;
    if parts.status != http::StatusCode::OK {
        return Err(http_status(parts.status));
    }
    // A trailers-only response: the status is in the headers.
    if let Some(status) = metadata::status_from_headers(&parts.headers) {
        if status.code() != Code::Ok {
            return Err(status);
        }
        if recv.is_end_stream() {
            return Ok(Start {
                headers: parts.headers,
                body: None,
            });
        }
    }
    let grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return Err(
            Status::unknown("grpc: the response is not gRPC (content-type)")
                .with_delivery(Delivery::MaybeSent),
        );
    }
    let encoding = match parts.headers.get("grpc-encoding").map(|v| v.to_str()) {
        None => None,
        Some(Ok(name)) => crate::compression::Encoding::parse(name).map_err(|other| {
            Status::internal(format!(
                "grpc: the server compressed with unknown \"{other}\""
            ))
        })?,
        Some(Err(_)) => return Err(Status::internal("grpc: malformed grpc-encoding")),
    };
    Ok(Start {
        headers: parts.headers,
        body: Some((recv, Decoder::new(max_recv, encoding))),
    })
}

/// The status for an HTTP error status, as gRPC's spec maps them.
fn http_status(code: http::StatusCode) -> Status {
    let c = match code.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(c, format!("grpc: HTTP status {code}"))
        .with_delivery(weft_core::Delivery::MaybeSent)
}

/// An HTTP/2 error on a stream as a status: a reset by the peer is a
/// cancellation, anything else the transport failing.
pub(crate) fn h2_status(e: h2::Error) -> Status {
    if let Some(reason) = e.reason() {
        match reason {
            h2::Reason::CANCEL => return Status::cancelled("grpc: the stream was cancelled"),
            h2::Reason::REFUSED_STREAM => {
                return Status::refused(Code::Unavailable, "grpc: the stream was refused")
            }
            h2::Reason::ENHANCE_YOUR_CALM => {
                return Status::new(Code::ResourceExhausted, format!("grpc: {e}"))
            }
            // A graceful GOAWAY fails only the streams past the last one
            // the server will process: these never reached a handler.
            h2::Reason::NO_ERROR if e.is_go_away() && e.is_remote() => {
                return Status::refused(Code::Unavailable, format!("grpc: {e}"))
            }
            _ => {}
        }
    }
    Status::new(Code::Unavailable, format!("grpc: {e}"))
        .with_delivery(weft_core::Delivery::MaybeSent)
}

/// Received messages of type `M`, decoded and validated as they are taken.
pub struct Streaming<M> {
    raw: RawStreaming,
    _m: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Streaming<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Streaming").field(&self.raw).finish()
    }
}

impl<M: Message> Streaming<M> {
    /// Decode the messages of `raw`.
    pub fn new(raw: RawStreaming) -> Streaming<M> {
        Streaming {
            raw,
            _m: PhantomData,
        }
    }

    /// The next message, `None` at the end.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        std::future::poll_fn(|cx| self.raw.poll_message(cx))
            .await
            .map(|r| r.and_then(message::decode))
            .transpose()
    }

    /// The trailers, once the stream ended (client side).
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.raw.trailers()
    }

    /// The response headers, once they came (client side).
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.raw.headers()
    }

    /// Whether the last message taken came compressed.
    pub fn last_compressed(&self) -> bool {
        self.raw.last_compressed()
    }
}

impl<M: Message> Stream for Streaming<M> {
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.raw
            .poll_message(cx)
            .map(|r| r.map(|r| r.and_then(message::decode)))
    }
}
