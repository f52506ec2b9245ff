//! Shared by the timeout and retry tests over real sockets: echo servers
//! with layers around the handler, a probe that sees what a server did with
//! each call, and a two-backend router.
#![allow(dead_code, unreachable_pub)]

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tokio::time::Instant;
use tower::{Layer, Service};
use weft::{
    core::{
        Address, Client, Code, ConnectionMode, Context, Request, Response, ServerBuilder,
        ServerHandle, Status,
    },
    thrift::{Protocol, ThriftClientCodec, ThriftServerCodec, Transport},
};
use weft_interop::{
    sample_payload, EchoClient, EchoEchoArgsSend, EchoRequest, EchoResponse, EchoSlowArgsSend,
};
use weft_middleware::retry::PREVIOUS_ATTEMPTS;

pub type EchoConn = Client<ThriftClientCodec<EchoRequest, EchoResponse>>;
pub type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;

/// Serve `svc` (an echo handler wrapped in layers) on a loopback port.
pub async fn serve<S>(svc: S) -> ServerHandle
where
    S: Service<Request<EchoRequest>, Response = Response<EchoResponse>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let builder = ServerBuilder::new();
    let limits = builder.limits_ref().clone();
    let addr: Address = "127.0.0.1:0".parse().unwrap();
    builder
        .serve(
            &addr,
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            svc,
        )
        .await
        .unwrap()
}

/// A multiplexed TTHeader client of `addr`.
pub fn connect(addr: &Address) -> EchoConn {
    EchoClient::new(
        addr,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    )
    .inner
}

/// A multiplexed TTHeader client of `addr` whose calls have no deadline
/// unless they set one (no default timeout).
pub fn connect_without_timeout(addr: &Address) -> EchoConn {
    let codec = ThriftClientCodec::new(
        Transport::TTHeader,
        Protocol::Binary,
        &weft::core::Limits::default(),
    );
    weft::core::ClientBuilder::new(addr.clone())
        .no_timeout()
        .build(codec)
}

pub fn echo_request(cx: Context) -> Request<EchoRequest> {
    let mut cx = cx;
    cx.service = "Echo".into();
    cx.method = "echo".into();
    Request::new(
        cx,
        EchoRequest::Echo(EchoEchoArgsSend {
            payload: sample_payload(16),
        }),
    )
}

pub fn slow_request(cx: Context, millis: i32) -> Request<EchoRequest> {
    let mut cx = cx;
    cx.service = "Echo".into();
    cx.method = "slow".into();
    Request::new(
        cx,
        EchoRequest::Slow(EchoSlowArgsSend {
            payload: sample_payload(16),
            millis,
        }),
    )
}

// ===== Probe =====

/// What a server did with the calls that passed the probe.
#[derive(Debug, Default)]
pub struct Stats {
    pub calls: AtomicUsize,
    pub completed: AtomicUsize,
    /// Handler futures dropped before they finished: cancelled.
    pub dropped: AtomicUsize,
    /// Time from arrival to the drop, for each cancelled call.
    pub dropped_after: Mutex<Vec<Duration>>,
    /// The budget each call arrived with.
    pub remaining: Mutex<Vec<Option<Duration>>>,
    /// The result of each completed call.
    pub codes: Mutex<Vec<Option<Code>>>,
}

impl Stats {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Counts calls, completions and cancellations of the service it wraps.
#[derive(Debug, Clone, Default)]
pub struct ProbeLayer(pub Arc<Stats>);

#[derive(Debug, Clone)]
pub struct Probe<S> {
    inner: S,
    stats: Arc<Stats>,
}

impl<S> Layer<S> for ProbeLayer {
    type Service = Probe<S>;
    fn layer(&self, inner: S) -> Probe<S> {
        Probe {
            inner,
            stats: self.0.clone(),
        }
    }
}

struct DropGuard {
    stats: Arc<Stats>,
    arrived: Instant,
    done: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.done {
            self.stats.dropped.fetch_add(1, Ordering::SeqCst);
            self.stats
                .dropped_after
                .lock()
                .unwrap()
                .push(self.arrived.elapsed());
        }
    }
}

impl<S, T, U> Service<Request<T>> for Probe<S>
where
    S: Service<Request<T>, Response = U, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = U;
    type Error = Status;
    type Future = BoxFut<U>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<T>) -> BoxFut<U> {
        self.stats.calls.fetch_add(1, Ordering::SeqCst);
        self.stats
            .remaining
            .lock()
            .unwrap()
            .push(req.cx.remaining());
        let guard = DropGuard {
            stats: self.stats.clone(),
            arrived: Instant::now(),
            done: false,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut guard = guard;
            let out = fut.await;
            guard.done = true;
            guard.stats.completed.fetch_add(1, Ordering::SeqCst);
            guard
                .stats
                .codes
                .lock()
                .unwrap()
                .push(out.as_ref().err().map(|s| s.code()));
            out
        })
    }
}

// ===== Router =====

/// Sends attempt `n` of a call (from the retry layer's
/// [`PREVIOUS_ATTEMPTS`] mark) to backend `n % backends.len()`: the "pick
/// another instance on retry" part of a load balancer, no more.
#[derive(Debug, Clone)]
pub struct ByAttempt {
    pub backends: Vec<EchoConn>,
}

impl Service<Request<EchoRequest>> for ByAttempt {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = BoxFut<Response<EchoResponse>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let n: usize = req
            .cx
            .metainfo
            .transient
            .get(PREVIOUS_ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut backend = self.backends[n % self.backends.len()].clone();
        Box::pin(async move { backend.call(req).await })
    }
}

/// The `q`-quantile of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i]
}

// ===== waiting =====

/// Wait until `cond` holds, polling, for at most 10 s; panics naming
/// `what` if it never does. Tests wait on what they need, never for a
/// guessed time.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
