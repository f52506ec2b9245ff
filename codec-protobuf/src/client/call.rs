//! One call from the client: open a stream (retrying once on a fresh
//! connection when the old one was going away: nothing was sent), send
//! the headers and messages, read the response headers, messages and
//! trailers, under the call's deadline.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::HeaderValue;
use weft_core::{Code, Context, Delivery, Request, Response, Status};

use super::conn::Inner;
use crate::{
    compression::{Encoding, ACCEPT_ENCODING},
    frame, metadata,
    service::MethodDesc,
    streaming::{client_start, h2_status, RawStreaming},
};

const USER_AGENT: &str = concat!("weft-grpc/", env!("CARGO_PKG_VERSION"));

/// A unary call: `message` is framed already. A call that fails unsent
/// hands its request back ([`Status::with_unsent`]), for a retry to send
/// again without having kept a copy.
pub(crate) async fn unary(
    inner: std::sync::Arc<Inner>,
    mut cx: Context,
    call: super::GrpcCall,
) -> Result<Response<Bytes>, Status> {
    let deadline = cx.deadline;
    let exchange = unary_inner(&inner, &mut cx, &call);
    let result = match deadline {
        Some(d) => match tokio::time::timeout_at(d, exchange).await {
            Ok(r) => r,
            // Dropping the call reset its stream: the server is told.
            Err(_) => Err(Status::deadline_exceeded("grpc: deadline exceeded")
                .with_delivery(Delivery::MaybeSent)),
        },
        None => exchange.await,
    };
    match result {
        Ok(message) => Ok(Response::new(cx, message)),
        Err(status) if status.is_not_sent() => Err(status.with_unsent(Request::new(cx, call))),
        Err(status) => Err(status),
    }
}

async fn unary_inner(
    inner: &Inner,
    cx: &mut Context,
    call: &super::GrpcCall,
) -> Result<Bytes, Status> {
    // Compressed before the stream opens: a message too large to send is
    // refused without the server ever seeing a stream.
    let body = recompress(
        call.message.clone(),
        inner.compress,
        inner.limits.max_send_message,
    )?;
    let (response, mut send) = open(inner, cx, call.method).await?;
    if let Some(sizes) = &cx.sizes {
        sizes.request(body.len());
    }
    // A server may answer from the headers alone (an unknown service, a
    // refusal) and close the stream before the message is queued; then
    // sending fails, but the answer it gave is the call's outcome. Only
    // when no answer comes is there an error, and the stream's says why.
    let _ = send.send_data(body, true);
    let response = response.await.map_err(|e| sent_error(h2_status(e)))?;
    let (parts, recv) = response.into_parts();
    let start = client_start(parts, recv, inner.limits.max_recv_message)?;
    let Some((recv, decoder)) = start.body else {
        return Err(
            Status::internal("grpc: the server sent no response message")
                .with_delivery(Delivery::MaybeSent),
        );
    };
    let headers = start.headers;
    let mut raw = RawStreaming::new(recv, decoder, true);
    let first = std::future::poll_fn(|tcx| raw.poll_message(tcx)).await;
    let message = match first {
        Some(Ok(m)) => {
            // The one message is the response's size; an error answer
            // (trailers only) carries none. Taken off so that a reused
            // response context reports nothing again.
            if let Some(sizes) = cx.sizes.take() {
                sizes.response(raw.last_wire_len());
            }
            m
        }
        Some(Err(s)) => return Err(s),
        None => {
            return Err(
                Status::internal("grpc: the server sent no response message")
                    .with_delivery(Delivery::MaybeSent),
            )
        }
    };
    match std::future::poll_fn(|tcx| raw.poll_message(tcx)).await {
        None => {}
        Some(Err(s)) => return Err(s),
        Some(Ok(_)) => {
            return Err(
                Status::internal("grpc: the server sent more than one response message")
                    .with_delivery(Delivery::MaybeSent),
            )
        }
    }
    metadata::response_into_cx(headers, raw.take_trailers(), cx);
    Ok(message)
}

/// A streaming call: the requests (framed) are sent by a task of their own
/// as the window allows; the responses come as a [`RawStreaming`].
pub(crate) async fn streaming<S>(
    inner: std::sync::Arc<Inner>,
    cx: Context,
    method: &'static MethodDesc,
    reqs: S,
) -> Result<(Context, RawStreaming), Status>
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let deadline = cx.deadline;
    let opened = open(&inner, &cx, method);
    let (response, send) = match deadline {
        Some(d) => tokio::time::timeout_at(d, opened)
            .await
            .map_err(|_| Status::deadline_exceeded("grpc: deadline exceeded"))??,
        None => opened.await?,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(pump(
        send,
        reqs,
        cancel.clone(),
        inner.compress,
        inner.limits.max_send_message,
    ));
    // The response head is awaited by the stream, not here: a peer may
    // answer nothing until it has read requests the caller sends later.
    let raw = RawStreaming::pending(response, inner.limits.max_recv_message)
        .with_deadline(deadline)
        .with_guard(cancel.drop_guard());
    Ok((cx, raw))
}

/// Send `reqs` on `send`, one message at a time as the window opens, then
/// end the stream; reset it if the call is cancelled first.
async fn pump<S: Stream<Item = Bytes>>(
    mut send: h2::SendStream<Bytes>,
    reqs: S,
    cancel: tokio_util::sync::CancellationToken,
    encoding: Option<Encoding>,
    max_send: usize,
) {
    let mut reqs = std::pin::pin!(reqs);
    loop {
        let ready = std::future::poll_fn(|tcx| crate::send::poll_ready(&mut send, tcx));
        tokio::select! {
            _ = cancel.cancelled() => {
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            r = ready => if r.is_err() { return },
        }
        let next = tokio::select! {
            _ = cancel.cancelled() => {
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            next = reqs.next() => next,
        };
        let Some(msg) = next else {
            let _ = send.send_data(Bytes::new(), true);
            // Stay until the call ends: dropping `send` early is fine for
            // h2, but a cancel after this must still reset the stream.
            cancel.cancelled().await;
            send.send_reset(h2::Reason::CANCEL);
            return;
        };
        match recompress(msg, encoding, max_send) {
            Ok(body) => {
                if send.send_data(body, false).is_err() {
                    return;
                }
            }
            Err(status) => {
                tracing::warn!(%status, "grpc: a request message could not be sent");
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
        }
    }
}

/// Open a stream for `method`: a connection with room for it, the request
/// headers sent. Errors here are "not sent": no byte of the call left.
async fn open(
    inner: &Inner,
    cx: &Context,
    method: &'static MethodDesc,
) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), Status> {
    let mut last = None;
    // A connection that went away between calls fails the first attempt
    // before anything was sent; one fresh connection is tried. The head is
    // built per attempt: cloning it would cost as much, and it rarely fails.
    for _ in 0..2 {
        let request = request_head(inner, cx, method)?;
        let (slot, generation, send) = inner.sender().await?;
        let mut send = match send.ready().await {
            Ok(s) => s,
            Err(e) => {
                inner.retire(slot, generation);
                last = Some(e);
                continue;
            }
        };
        match send.send_request(request, false) {
            Ok(pair) => return Ok(pair),
            Err(e) => {
                inner.retire(slot, generation);
                last = Some(e);
            }
        }
    }
    let e = last.expect("two attempts failed");
    Err(Status::new(Code::Unavailable, format!("grpc: {e}")).with_delivery(Delivery::NotSent))
}

fn request_head(
    inner: &Inner,
    cx: &Context,
    method: &'static MethodDesc,
) -> Result<http::Request<()>, Status> {
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(inner.authority.clone())
        .path_and_query(http::uri::PathAndQuery::from_static(method.path))
        .build()
        .map_err(|e| Status::internal(format!("grpc: bad method path {}: {e}", method.path)))?;
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(USER_AGENT),
    );
    headers.insert(
        "grpc-accept-encoding",
        HeaderValue::from_static(ACCEPT_ENCODING),
    );
    if let Some(e) = inner.compress {
        headers.insert("grpc-encoding", HeaderValue::from_static(e.as_str()));
    }
    if let Some(remaining) = cx.remaining() {
        if remaining.is_zero() {
            return Err(
                Status::deadline_exceeded("grpc: the deadline passed before sending")
                    .with_delivery(Delivery::NotSent),
            );
        }
        headers.insert("grpc-timeout", metadata::format_timeout(remaining));
    }
    metadata::cx_into_request(cx, headers);
    Ok(request)
}

/// An error after the request headers left: the server may have seen the
/// call, unless it refused the stream.
fn sent_error(status: Status) -> Status {
    if status.is_refusal() {
        status
    } else {
        status.with_delivery(Delivery::MaybeSent)
    }
}

/// Compress a framed message when the client compresses requests.
fn recompress(framed: Bytes, encoding: Option<Encoding>, max: usize) -> Result<Bytes, Status> {
    let Some(_) = encoding else {
        let len = framed.len().saturating_sub(frame::PREFIX_LEN);
        if len > max {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!("grpc: trying to send message larger than max ({len} vs. {max})"),
            )
            .with_delivery(Delivery::NotSent));
        }
        return Ok(framed);
    };
    let mut payload = framed;
    payload.advance(frame::PREFIX_LEN);
    let mut buf = BytesMut::with_capacity(payload.len() / 2 + 16);
    let start = frame::begin(&mut buf);
    buf.extend_from_slice(&payload);
    frame::seal(&mut buf, start, encoding, max)?;
    Ok(buf.freeze())
}
