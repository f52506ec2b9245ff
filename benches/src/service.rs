//! The `Bench` echo service on Weft: entry messages, a handler that
//! answers without allocating or boxing, and a typed client.

use std::{
    future::{ready, Ready},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
};

use tower::ServiceExt;
use weft::{
    core::{
        bytes::Bytes, faststr::FastStr, Address, Client, ClientBuilder, ConnectionMode, Context,
        Limits, Request, Response, ServerBuilder, ServerHandle, Status,
    },
    thrift::{Protocol, ThriftClientCodec, ThriftServerCodec, Transport},
};

use crate::types::{
    BenchEchoArgsSend, BenchEchoBinArgsSend, BenchEchoBinResultSend, BenchEchoResultSend,
};

weft_interop::entry_message!(
    /// The arguments of every `Bench` method.
    BenchRequest {
        "echo" => Echo(BenchEchoArgsSend),
        "echo_bin" => EchoBin(BenchEchoBinArgsSend),
    }
);

weft_interop::entry_message!(
    /// The results of every `Bench` method.
    BenchResponse {
        "echo" => Echo(BenchEchoResultSend),
        "echo_bin" => EchoBin(BenchEchoBinResultSend),
    }
);

/// The echo handler: returns what it got, counting calls. Its future is
/// `Ready`, so the framework's own costs are what the benchmarks see.
#[derive(Debug, Clone, Default)]
pub struct BenchHandler {
    calls: Arc<AtomicU64>,
}

impl BenchHandler {
    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A handler counting into `calls`.
    pub fn with_counter(calls: Arc<AtomicU64>) -> Self {
        BenchHandler { calls }
    }
}

impl tower::Service<Request<BenchRequest>> for BenchHandler {
    type Response = Response<BenchResponse>;
    type Error = Status;
    type Future = Ready<Result<Response<BenchResponse>, Status>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<BenchRequest>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Request { cx, message } = req;
        // The request's context goes back as the response's: only its
        // (empty) backward metainfo is written.
        let message = match message {
            BenchRequest::Echo(a) => BenchResponse::Echo(BenchEchoResultSend::Ok(a.msg)),
            BenchRequest::EchoBin(a) => BenchResponse::EchoBin(BenchEchoBinResultSend::Ok(a.data)),
        };
        ready(Ok(Response::new(cx, message)))
    }
}

/// Serve `handler` on `addr` (`127.0.0.1:0` picks a port, `unix:/path` a
/// Unix socket) with the default server builder.
pub async fn serve(addr: &str, handler: BenchHandler) -> std::io::Result<ServerHandle> {
    let builder = ServerBuilder::new();
    let limits = builder.limits_ref().clone();
    let addr: Address = addr.parse()?;
    builder
        .serve(
            &addr,
            move || ThriftServerCodec::<BenchRequest, BenchResponse>::new(&limits),
            handler,
        )
        .await
}

/// A typed client of `Bench` over TTHeader and the binary protocol, the
/// codec settings closest to Volo's default.
#[derive(Debug, Clone)]
pub struct BenchClient {
    inner: Client<ThriftClientCodec<BenchRequest, BenchResponse>>,
}

impl BenchClient {
    /// A client of `addr`. A pooled client keeps up to `max(64, pool)` idle
    /// connections: one per concurrent caller, like Volo's pool (10,240 by
    /// default), rather than Weft's default of 64.
    pub fn new(addr: &Address, mode: ConnectionMode, pool: usize) -> BenchClient {
        let limits = Limits::default();
        let codec = ThriftClientCodec::new(Transport::TTHeader, Protocol::Binary, &limits);
        let builder = ClientBuilder::new(addr.clone())
            .mode(mode)
            .max_idle(pool.max(weft::core::client::DEFAULT_MAX_IDLE))
            .max_connections(pool.max(weft::core::client::DEFAULT_MAX_CONNECTIONS));
        BenchClient {
            inner: builder.build(codec),
        }
    }

    async fn call(&self, method: &'static str, req: BenchRequest) -> Result<BenchResponse, Status> {
        let cx = Context::new(
            FastStr::from_static_str("Bench"),
            FastStr::from_static_str(method),
        );
        let resp = self.inner.clone().oneshot(Request::new(cx, req)).await?;
        Ok(resp.message)
    }

    /// `Bench.echo`.
    pub async fn echo(&self, msg: FastStr) -> Result<FastStr, Status> {
        match self
            .call("echo", BenchRequest::Echo(BenchEchoArgsSend { msg }))
            .await?
        {
            BenchResponse::Echo(BenchEchoResultSend::Ok(s)) => Ok(s),
            other => Err(Status::internal(format!("unexpected {other:?}"))),
        }
    }

    /// `Bench.echo_bin`.
    pub async fn echo_bin(&self, data: Bytes) -> Result<Bytes, Status> {
        match self
            .call(
                "echo_bin",
                BenchRequest::EchoBin(BenchEchoBinArgsSend { data }),
            )
            .await?
        {
            BenchResponse::EchoBin(BenchEchoBinResultSend::Ok(b)) => Ok(b),
            other => Err(Status::internal(format!("unexpected {other:?}"))),
        }
    }
}
