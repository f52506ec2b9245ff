//! The gRPC client: one HTTP/2 connection per peer (or several), every call
//! a stream on it.
//!
//! [`GrpcClient`] is a `tower::Service<Request<GrpcCall>>` for unary calls,
//! so timeouts, retries, breakers and balancing wrap it as they wrap a
//! Thrift client; the request is encoded once, before any of them, and a
//! retry resends the same bytes. Streaming calls go straight to the client
//! ([`Streams`]).

mod call;
mod conn;
mod preface;

use std::{
    fmt,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures::{future::BoxFuture, Stream};
use tower::{Service, ServiceExt};
use weft_core::{Address, Connector, Context, Request, Response, Status};

use crate::{
    compression::Encoding,
    frame,
    limits::GrpcLimits,
    message::{self, Message},
    service::MethodDesc,
    streaming::Streaming,
};

/// Time a unary call may take when its context has no deadline, as for
/// Weft's Thrift client: every call ends. Streams get no default deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One unary call on the wire: the method, and its request message already
/// framed (prefix and message), so middleware can clone and resend it
/// without encoding again.
#[derive(Debug, Clone)]
pub struct GrpcCall {
    /// The method called.
    pub method: &'static MethodDesc,
    /// The framed request message.
    pub message: Bytes,
}

impl GrpcCall {
    /// Frame `req` for `method`.
    pub fn new<M: Message>(method: &'static MethodDesc, req: &M) -> GrpcCall {
        let mut buf = BytesMut::with_capacity(frame::PREFIX_LEN + message::encoded_len(req));
        let start = frame::begin(&mut buf);
        message::encode_into(req, &mut buf);
        let len = buf.len() - start - frame::PREFIX_LEN;
        // Within u32 or the encode would have failed to fit in memory
        // first; the send limit is checked by the client.
        buf[start] = 0;
        buf[start + 1..start + 5].copy_from_slice(&(len as u32).to_be_bytes());
        GrpcCall {
            method,
            message: buf.freeze(),
        }
    }
}

/// Configures a [`GrpcClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GrpcClientBuilder {
    addr: Address,
    connector: Connector,
    limits: GrpcLimits,
    timeout: Option<Duration>,
    compress: Option<Encoding>,
    connections: usize,
}

impl GrpcClientBuilder {
    /// Limits on messages and the HTTP/2 connection. Default
    /// [`GrpcLimits::default`].
    pub fn limits(mut self, limits: GrpcLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Socket options and connect timeout. Default [`Connector::default`].
    pub fn connector(mut self, connector: Connector) -> Self {
        self.connector = connector;
        self
    }

    /// Deadline of unary calls whose context has none. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No default deadline: a unary call without one may wait forever.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Compress request messages with `encoding`. Default: identity.
    pub fn send_compressed(mut self, encoding: Encoding) -> Self {
        self.compress = Some(encoding);
        self
    }

    /// HTTP/2 connections to the peer, calls spread over them in turn.
    /// Default 1: one connection carries many concurrent calls.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// The client. Connections open on the first call.
    pub fn build(self) -> GrpcClient {
        let authority = match &self.addr {
            Address::Tcp(a) => http::uri::Authority::try_from(a.to_string().as_str()).ok(),
            Address::Host(h, port) => {
                http::uri::Authority::try_from(format!("{h}:{port}").as_str()).ok()
            }
            Address::Unix(_) => None,
        }
        .unwrap_or_else(|| http::uri::Authority::from_static("localhost"));
        GrpcClient {
            inner: Arc::new(conn::Inner::new(
                self.addr,
                authority,
                self.connector,
                self.limits,
                self.compress,
                self.connections,
            )),
            timeout: self.timeout,
        }
    }
}

/// A gRPC client of one peer.
#[derive(Clone)]
pub struct GrpcClient {
    inner: Arc<conn::Inner>,
    timeout: Option<Duration>,
}

impl fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClient")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl GrpcClient {
    /// A client of `addr` with default settings.
    pub fn new(addr: Address) -> GrpcClient {
        GrpcClient::builder(addr).build()
    }

    /// Configure a client of `addr`.
    pub fn builder(addr: Address) -> GrpcClientBuilder {
        GrpcClientBuilder {
            addr,
            connector: Connector::default(),
            limits: GrpcLimits::default(),
            timeout: Some(DEFAULT_TIMEOUT),
            compress: None,
            connections: 1,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> &Address {
        &self.inner.addr
    }
}

impl Service<Request<GrpcCall>> for GrpcClient {
    type Response = Response<Bytes>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response<Bytes>, Status>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        // Stream slots are waited for per call (HTTP/2's concurrency limit
        // is the peer's to set); connections open on demand.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<GrpcCall>) -> Self::Future {
        let inner = self.inner.clone();
        let mut cx = req.cx;
        if cx.deadline.is_none() {
            if let Some(t) = self.timeout {
                cx.set_timeout(t);
            }
        }
        Box::pin(call::unary(inner, cx, req.message))
    }
}

/// A client that can make streaming calls: [`GrpcClient`].
pub trait Streams {
    /// The client streams go through.
    fn grpc_client(&self) -> &GrpcClient;
}

impl Streams for GrpcClient {
    fn grpc_client(&self) -> &GrpcClient {
        self
    }
}

fn named(mut cx: Context, method: &'static MethodDesc, service: &'static str) -> Context {
    if cx.method.is_empty() {
        cx.method = faststr::FastStr::from_static_str(method.name);
    }
    if cx.service.is_empty() {
        cx.service = faststr::FastStr::from_static_str(service);
    }
    cx
}

fn service_of(method: &'static MethodDesc) -> &'static str {
    method
        .path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .map_or("", |(s, _)| s)
}

/// A unary call through `svc`: a [`GrpcClient`] or any middleware around
/// one. Generated clients call this.
pub async fn unary<T, M, R>(
    svc: &T,
    cx: Context,
    method: &'static MethodDesc,
    req: &M,
) -> Result<Response<R>, Status>
where
    T: Service<Request<GrpcCall>, Response = Response<Bytes>, Error = Status> + Clone,
    M: Message,
    R: Message,
{
    let cx = named(cx, method, service_of(method));
    let call = GrpcCall::new(method, req);
    let resp = svc.clone().oneshot(Request::new(cx, call)).await?;
    let message = message::decode(resp.message)?;
    Ok(Response::new(resp.cx, message))
}

/// A server-streaming call: one request, the responses as they come.
pub async fn server_streaming<M: Message, R: Message>(
    client: &GrpcClient,
    cx: Context,
    method: &'static MethodDesc,
    req: &M,
) -> Result<Response<Streaming<R>>, Status> {
    let cx = named(cx, method, service_of(method));
    let call = GrpcCall::new(method, req);
    let once = futures::stream::once(async move { call.message });
    let (cx, raw) = call::streaming(client.inner.clone(), cx, method, once).await?;
    Ok(Response::new(cx, Streaming::new(raw)))
}

/// A client-streaming call: the requests as `reqs` yields them, one response.
pub async fn client_streaming<M, R, S>(
    client: &GrpcClient,
    cx: Context,
    method: &'static MethodDesc,
    reqs: S,
) -> Result<Response<R>, Status>
where
    M: Message,
    R: Message,
    S: Stream<Item = M> + Send + 'static,
{
    let resp = bidi_streaming::<M, R, S>(client, cx, method, reqs).await?;
    let (cx, mut stream) = (resp.cx, resp.message);
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Status::internal("grpc: the server sent no response message"))?;
    if stream.message().await?.is_some() {
        return Err(Status::internal(
            "grpc: the server sent more than one response message",
        ));
    }
    Ok(Response::new(cx, first))
}

/// A bidirectional call: requests as `reqs` yields them (sent as the
/// server's window allows), responses as they come.
pub async fn bidi_streaming<M, R, S>(
    client: &GrpcClient,
    cx: Context,
    method: &'static MethodDesc,
    reqs: S,
) -> Result<Response<Streaming<R>>, Status>
where
    M: Message,
    R: Message,
    S: Stream<Item = M> + Send + 'static,
{
    use futures::StreamExt;
    let cx = named(cx, method, service_of(method));
    let framed = reqs.map(move |m| GrpcCall::new(method, &m).message);
    let (cx, raw) = call::streaming(client.inner.clone(), cx, method, framed).await?;
    Ok(Response::new(cx, Streaming::new(raw)))
}
