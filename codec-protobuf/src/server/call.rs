//! One gRPC call on the server: its headers become a [`Context`], its body a
//! [`RequestBody`], the handler runs under the call's deadline and the
//! peer's cancellation, and the answer goes out as headers, messages (as
//! fast as the peer's window allows) and trailers, or as a trailers-only
//! response for an error.

use std::{
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use faststr::FastStr;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio_util::sync::CancellationToken;
use weft_core::{Address, Code, Context, Status};

use super::{conn::Shared, Answer, Compress};
use crate::budget::{Budget, Charged, Held};
use crate::{
    compression::{Encoding, ACCEPT_ENCODING},
    frame::{self, Decoder},
    metadata,
    service::{MethodKind, RequestBody},
    streaming::{h2_status, RawStreaming},
};

const CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/grpc");

/// How a call ended before an answer: with a status to send, or with the
/// peer gone (nothing to send).
enum Ended {
    Status(Status),
    Reset,
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Charged>,
    peer: Option<Address>,
    stop: CancellationToken,
) {
    let (parts, body) = req.into_parts();
    // The request's bytes stay charged until the call ends: its header
    // list first (HPACK's measure), refused past the bounds so that
    // streams that never send a message cannot each hold up to a header
    // list's limit. REFUSED_STREAM: not processed, retry elsewhere.
    let mut held = Held::new(shared.budget.clone());
    if !held.hold_head(header_list_size(&parts.headers)) {
        tracing::debug!(?peer, "grpc: call refused: the byte budget is spent");
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return;
    }
    // Not gRPC at all: answer in HTTP, as gRPC's spec asks.
    if parts.method != http::Method::POST {
        return http_error(&mut respond, StatusCode::METHOD_NOT_ALLOWED);
    }
    let grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return http_error(&mut respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let accept = parts
        .headers
        .get("grpc-accept-encoding")
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_accept);

    let prepared = prepare(&shared, &parts.uri, &parts.headers, peer);
    let (route, method, path, kind, mut cx, recv_encoding) = match prepared {
        Ok(p) => p,
        Err(status) => return trailers_only(&mut respond, &status, None),
    };
    metadata::request_into_cx(parts.headers, &mut cx);

    let deadline = cx.deadline;
    let stopped = stop.cancelled();
    let mut stopped = pin!(stopped);
    let decoder = Decoder::new(shared.limits.max_recv_message, recv_encoding);
    let mut recv = body;

    // The one request message of unary and server-streaming calls is read
    // before the handler runs, under the read timeout and the deadline.
    let mut request_bytes = None;
    let body = if kind.one_request() {
        let read = read_one(&mut recv, decoder, &mut held);
        let read = pin!(read);
        match guard(
            read,
            &mut respond,
            deadline,
            Some(shared.conn_limits.read_timeout),
            stopped.as_mut(),
        )
        .await
        {
            Ok(Ok((m, compressed, wire_len))) => {
                request_bytes = Some(wire_len);
                if compressed {
                    cx.extensions.insert(super::Compressed);
                }
                RequestBody::Message(m)
            }
            Ok(Err(status)) | Err(Ended::Status(status)) => {
                return trailers_only(&mut respond, &status, None)
            }
            Err(Ended::Reset) => return,
        }
    } else {
        RequestBody::Stream(RawStreaming::new(recv, decoder, false).with_budget(held))
    };

    // No handler starts while the connection's or the server's unwritten
    // answers are at their bound: a peer that does not read waits here.
    // Checked first without waiting: the guard's timer costs, and there
    // is room on nearly every call.
    if !shared.budget.has_answer_room() {
        let room = std::future::poll_fn(|tcx| shared.budget.poll_answer_room(tcx));
        match guard(pin!(room), &mut respond, deadline, None, stopped.as_mut()).await {
            Ok(()) => {}
            Err(Ended::Status(status)) => return trailers_only(&mut respond, &status, None),
            Err(Ended::Reset) => return,
        }
    }
    let mut call = route.call(method, path, cx, body, request_bytes);
    let (cx, answer, sizes) = match guard(
        call.as_mut(),
        &mut respond,
        deadline,
        None,
        stopped.as_mut(),
    )
    .await
    {
        Ok(Ok(a)) => a,
        Ok(Err(status)) | Err(Ended::Status(status)) => {
            return trailers_only(&mut respond, &status, None)
        }
        Err(Ended::Reset) => return,
    };

    let send_encoding = cx
        .extensions
        .get::<Compress>()
        .map(|c| c.0)
        .or(shared.compress)
        .filter(|e| Some(*e) == accept);
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, CONTENT_TYPE);
    headers.insert(
        "grpc-accept-encoding",
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    if let Some(e) = send_encoding {
        headers.insert("grpc-encoding", HeaderValue::from_static(e.as_str()));
    }
    metadata::cx_into_response(&cx, &mut headers);
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    let mut send = match respond.send_response(response, false) {
        Ok(s) => s,
        Err(_) => return,
    };

    let max_send = shared.limits.max_send_message;
    let outcome = match answer {
        Answer::One(mut one) => match frame::seal(&mut one, 0, send_encoding, max_send) {
            Ok(()) => {
                let len = one.len();
                let sent = send
                    .send_data(shared.budget.answer(one.freeze()), false)
                    .map_err(|_| Ended::Reset);
                if let (Some(sizes), Ok(())) = (&sizes, &sent) {
                    sizes.response(len);
                }
                sent
            }
            Err(status) => Err(Ended::Status(status)),
        },
        Answer::Stream(mut stream) => {
            let mut sent = 0;
            let pump = std::future::poll_fn(|tcx| {
                pump(
                    tcx,
                    &shared.budget,
                    &mut stream,
                    &mut send,
                    send_encoding,
                    max_send,
                    &mut sent,
                )
            });
            let pump = pin!(pump);
            let r = match guard_send(pump, deadline, stopped.as_mut()).await {
                Ok(r) => r,
                Err(e) => Err(e),
            };
            // Every message the stream sent, however it ended.
            if let Some(sizes) = &sizes {
                sizes.response(sent);
            }
            r
        }
    };
    let status = match outcome {
        Ok(()) => Status::new(Code::Ok, ""),
        Err(Ended::Status(s)) => s,
        Err(Ended::Reset) => return,
    };
    let mut trailers = HeaderMap::new();
    metadata::status_to_headers(&status, &mut trailers);
    if status.code() == Code::Ok {
        metadata::cx_into_trailers(&cx, &mut trailers);
    }
    let _ = send.send_trailers(trailers);
}

/// A header list's size as HPACK counts it (RFC 7541, 4.1): name, value
/// and 32 bytes of overhead per field.
fn header_list_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

type Prepared = (
    Arc<dyn super::Route>,
    usize,
    FastStr,
    MethodKind,
    Context,
    Option<Encoding>,
);

/// The route, method and context of a call, from its path and headers.
fn prepare(
    shared: &Shared,
    uri: &http::Uri,
    headers: &HeaderMap,
    peer: Option<Address>,
) -> Result<Prepared, Status> {
    let path = uri.path();
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| Status::unimplemented(format!("malformed method name: {path:?}")))?;
    let (route_name, route) = match shared.routes.get_key_value(service) {
        Some((name, route)) => (Some(name), route),
        None => match &shared.fallback {
            Some(route) => (None, route),
            None => return Err(Status::unimplemented(format!("unknown service {service}"))),
        },
    };
    let Some(m) = route.method(method) else {
        return Err(Status::unimplemented(format!(
            "unknown method {method} for service {service}"
        )));
    };
    // A generated route names its own methods; a raw one takes the names
    // from the path, which it is handed too (one copy of it, the names
    // slices of it).
    let (path, service_name, method_name) = match m.name {
        Some(name) => (
            FastStr::empty(),
            route_name.cloned().unwrap_or_default(),
            FastStr::from_static_str(name),
        ),
        None => {
            if service.is_empty() || method.is_empty() || method.contains('/') {
                return Err(Status::unimplemented(format!(
                    "malformed method name: {path:?}"
                )));
            }
            let path = FastStr::new(path);
            let s = path.slice_ref(&path[1..1 + service.len()]);
            let m = path.slice_ref(&path[2 + service.len()..]);
            (path, route_name.cloned().unwrap_or(s), m)
        }
    };
    let (encoding, timeout) = head(headers)?;
    let mut cx = Context::new(service_name, method_name);
    cx.peer = peer;
    if let Some(timeout) = timeout {
        cx.set_timeout(timeout);
        if timeout.is_zero() {
            return Err(Status::deadline_exceeded("deadline exceeded on arrival"));
        }
    }
    Ok((route.clone(), m.index, path, m.kind, cx, encoding))
}

/// The compression and timeout a request's headers state.
pub(crate) fn head(headers: &HeaderMap) -> Result<(Option<Encoding>, Option<Duration>), Status> {
    let encoding = match headers.get("grpc-encoding").map(|v| v.to_str()) {
        None => None,
        Some(Ok(name)) => match Encoding::parse(name) {
            Ok(e) => e,
            Err(other) => {
                return Err(Status::unimplemented(format!(
                    "grpc: Decompressor is not installed for grpc-encoding \"{other}\" (accepted: {ACCEPT_ENCODING})"
                )))
            }
        },
        Some(Err(_)) => return Err(Status::internal("grpc: malformed grpc-encoding")),
    };
    let timeout = match headers.get("grpc-timeout") {
        Some(t) => Some(
            metadata::parse_timeout(t.as_bytes())
                .map_err(|e| Status::internal(format!("transport: {}", e.message())))?,
        ),
        None => None,
    };
    Ok((encoding, timeout))
}

/// The one message of a unary or server-streaming request (whether it came
/// compressed, its size on the wire), and the end of the stream after it.
async fn read_one(
    recv: &mut h2::RecvStream,
    mut decoder: Decoder,
    held: &mut Held,
) -> Result<(Bytes, bool, usize), Status> {
    let mut message = None;
    loop {
        match decoder.next()? {
            Some(m) if message.is_none() => {
                message = Some((m, decoder.last_compressed(), decoder.last_wire_len()))
            }
            Some(_) => {
                return Err(Status::unimplemented(
                    "grpc: a second message on a method that takes one",
                ))
            }
            None => {}
        }
        match std::future::poll_fn(|cx| recv.poll_data(cx)).await {
            Some(Ok(chunk)) => {
                // Past the byte budget the window stays used until the
                // call ends: the peer cannot send more on this connection.
                let give_back = held.received(chunk.len());
                if give_back > 0 {
                    let _ = recv.flow_control().release_capacity(give_back);
                }
                decoder.push(chunk);
            }
            Some(Err(e)) => return Err(h2_status(e)),
            None => break,
        }
    }
    // The last chunk may have held whole messages too.
    while let Some(m) = decoder.next()? {
        if message.is_some() {
            return Err(Status::unimplemented(
                "grpc: a second message on a method that takes one",
            ));
        }
        message = Some((m, decoder.last_compressed(), decoder.last_wire_len()));
    }
    if decoder.is_mid_message() {
        return Err(Status::internal("grpc: the request ended inside a message"));
    }
    message.ok_or_else(|| Status::internal("grpc: a request without a message"))
}

/// Run `fut` until it finishes, the deadline or `timeout` passes, the peer
/// resets the stream, or the server stops.
async fn guard<F: Future + ?Sized>(
    fut: std::pin::Pin<&mut F>,
    respond: &mut h2::server::SendResponse<Charged>,
    deadline: Option<tokio::time::Instant>,
    timeout: Option<Duration>,
    mut stopped: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
) -> Result<F::Output, Ended> {
    let mut fut = fut;
    let until = match (deadline, timeout) {
        (Some(d), Some(t)) => Some(d.min(tokio::time::Instant::now() + t)),
        (d, t) => d.or_else(|| t.map(|t| tokio::time::Instant::now() + t)),
    };
    let sleep = until.map(|u| tokio::time::sleep_until(u));
    let mut sleep = pin!(sleep);
    std::future::poll_fn(|tcx| {
        if let Poll::Ready(out) = fut.as_mut().poll(tcx) {
            return Poll::Ready(Ok(out));
        }
        if respond.poll_reset(tcx).is_ready() {
            // The client cancelled: drop the handler, send nothing.
            return Poll::Ready(Err(Ended::Reset));
        }
        if stopped.as_mut().poll(tcx).is_ready() {
            return Poll::Ready(Err(Ended::Status(Status::unavailable(
                "the server is shutting down",
            ))));
        }
        if let Some(s) = sleep.as_mut().as_pin_mut() {
            if s.poll(tcx).is_ready() {
                let past_deadline = deadline.is_some_and(|d| d <= tokio::time::Instant::now());
                return Poll::Ready(Err(Ended::Status(if past_deadline {
                    Status::deadline_exceeded("deadline exceeded")
                } else {
                    Status::cancelled("the request was not received in time")
                })));
            }
        }
        Poll::Pending
    })
    .await
}

/// Like [`guard`], for the sending half (the reset shows on the send side).
async fn guard_send<F: Future<Output = Result<(), Ended>> + ?Sized>(
    fut: std::pin::Pin<&mut F>,
    deadline: Option<tokio::time::Instant>,
    mut stopped: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
) -> Result<Result<(), Ended>, Ended> {
    let mut fut = fut;
    let sleep = deadline.map(|d| tokio::time::sleep_until(d));
    let mut sleep = pin!(sleep);
    std::future::poll_fn(|tcx| {
        if let Poll::Ready(out) = fut.as_mut().poll(tcx) {
            return Poll::Ready(Ok(out));
        }
        if stopped.as_mut().poll(tcx).is_ready() {
            return Poll::Ready(Err(Ended::Status(Status::unavailable(
                "the server is shutting down",
            ))));
        }
        if let Some(s) = sleep.as_mut().as_pin_mut() {
            if s.poll(tcx).is_ready() {
                return Poll::Ready(Err(Ended::Status(Status::deadline_exceeded(
                    "deadline exceeded",
                ))));
            }
        }
        Poll::Pending
    })
    .await
}

/// Move messages from the handler's stream to the peer, one at a time and
/// only as the peer's window opens: a slow reader slows the handler.
fn pump(
    tcx: &mut TaskContext<'_>,
    budget: &Budget,
    stream: &mut crate::service::EncodeStream,
    send: &mut h2::SendStream<Charged>,
    encoding: Option<Encoding>,
    max_send: usize,
    sent: &mut usize,
) -> Poll<Result<(), Ended>> {
    loop {
        if send.poll_reset(tcx).is_ready() {
            return Poll::Ready(Err(Ended::Reset));
        }
        match crate::send::poll_ready(send, tcx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Err(Ended::Reset)),
            Poll::Ready(Ok(())) => {}
        }
        if budget.poll_answer_room(tcx).is_pending() {
            return Poll::Pending;
        }
        let mut buf = BytesMut::new();
        let start = frame::begin(&mut buf);
        match stream.poll_encode(tcx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(Ended::Status(status))),
            Poll::Ready(Some(Ok(()))) => {
                if let Err(status) = frame::seal(&mut buf, start, encoding, max_send) {
                    return Poll::Ready(Err(Ended::Status(status)));
                }
                let len = buf.len();
                if send.send_data(budget.answer(buf.freeze()), false).is_err() {
                    return Poll::Ready(Err(Ended::Reset));
                }
                *sent += len;
            }
        }
    }
}

fn trailers_only(
    respond: &mut h2::server::SendResponse<Charged>,
    status: &Status,
    cx: Option<&Context>,
) {
    if status.is_refusal() {
        // The server's own refusal (shed, draining, deadline gone before
        // the handler ran): REFUSED_STREAM says "not processed" in HTTP/2's
        // words (RFC 9113, 8.7), so any client may retry it elsewhere.
        tracing::debug!(%status, "grpc: call refused");
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return;
    }
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, CONTENT_TYPE);
    // What this server decompresses, so a client whose encoding was refused
    // can fall back (gRPC's compression.md).
    headers.insert(
        "grpc-accept-encoding",
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    metadata::status_to_headers(status, &mut headers);
    if let Some(cx) = cx {
        metadata::cx_into_response(cx, &mut headers);
    }
    let mut response = http::Response::new(());
    *response.headers_mut() = headers;
    let _ = respond.send_response(response, true);
}

fn http_error(respond: &mut h2::server::SendResponse<Charged>, code: StatusCode) {
    let mut response = http::Response::new(());
    *response.status_mut() = code;
    let _ = respond.send_response(response, true);
}
