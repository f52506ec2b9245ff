//! The client: a `tower::Service` over one peer, with multiplexed or pooled
//! connections.
//!
//! *Multiplexed*: many calls in flight on each of a few
//! connections, correlated by sequence id, for peers that answer out of
//! order (TTHeader). Calls per connection are bounded and `poll_ready` waits
//! for room. *Pooled*: one call at a time per connection, a
//! bounded number of connections, idle ones reused most recent first, for
//! plain framed or buffered Thrift peers.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context as TaskContext, Poll},
    time::Duration,
};

use bytes::Bytes;
use pin_project_lite::pin_project;
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Instant, Sleep},
};
use tokio_util::sync::PollSemaphore;
use tower_service::Service;

use crate::{
    codec::ClientCodec,
    context::Context,
    limits::Limits,
    message::{Request, Response},
    status::{Delivery, Status},
    transport::{Address, Connector},
};

mod mux;
mod pool;
mod stats;

pub use stats::{peers, PeerStats};

use self::{mux::MuxCall, mux::MuxSlot, pool::Pool};

/// How a client uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// Many calls in flight on one connection (TTHeader peers).
    Multiplexed,
    /// One call at a time per connection, idle ones pooled.
    Pooled,
}

/// Idle connections a pooled client keeps by default: enough that a burst
/// of concurrent callers does not close and reopen connections on check-in.
pub const DEFAULT_MAX_IDLE: usize = 1024;
/// Time an idle pooled connection is kept by default; servers commonly close
/// idle connections after a minute or more, so this stays below that.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of a call that brings no deadline: long enough for any call a
/// caller waits on synchronously, short enough that a lost answer frees its
/// slot; the same as the read and write timeouts.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Calls in flight per multiplexed connection: what a Weft server reads
/// from one connection before it stops reading, so more would only queue.
pub const DEFAULT_MAX_PENDING: usize = 4096;
/// Multiplexed connections per peer: one carries thousands of calls; more
/// only help when one socket's bandwidth or one writer is the bottleneck.
pub const DEFAULT_CONNECTIONS: usize = 1;
/// Open pooled connections per client: as many as idle ones kept, so a
/// burst that fits the idle pool is never made to wait.
pub const DEFAULT_MAX_CONNECTIONS: usize = DEFAULT_MAX_IDLE;
/// First wait after a failed connect: long enough not to spin on a refused
/// port, short enough that a restarted peer is found at once.
pub const DEFAULT_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between connect attempts: a peer that is down for long is
/// still retried every few seconds.
pub const DEFAULT_MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(5);

/// Configures a [`Client`].
///
/// A client of one address with any codec; the generated clients'
/// `builder` (in the facade) adds balancing, retries and timeouts on top.
///
/// ```
/// use std::time::Duration;
/// use weft_core::{tower::ServiceExt, ClientBuilder, ConnectionMode, Context, Limits, Request, ServerBuilder};
/// use weft_interop::{EchoAddArgsSend, EchoAddResultSend, EchoHandler, EchoRequest, EchoResponse};
/// use weft_thrift::{Protocol, ThriftClientCodec, Transport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = weft_interop::serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default()).await?;
///
/// let codec = ThriftClientCodec::<EchoRequest, EchoResponse>::new(
///     Transport::TTHeader,
///     Protocol::Binary,
///     &Limits::default(),
/// );
/// let client = ClientBuilder::new(server.local_addr().clone())
///     .mode(ConnectionMode::Multiplexed)
///     .timeout(Some(Duration::from_secs(1)))
///     .build(codec);
/// let req = Request::new(Context::new("Echo", "add"), EchoRequest::Add(EchoAddArgsSend { a: 2, b: 3 }));
/// let resp = client.oneshot(req).await?;
/// assert_eq!(resp.message, EchoResponse::Add(EchoAddResultSend::Ok(5)));
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    addr: Address,
    mode: ConnectionMode,
    connector: Connector,
    limits: Limits,
    max_idle: usize,
    idle_timeout: Duration,
    timeout: Option<Duration>,
    max_pending: usize,
    connections: usize,
    max_connections: usize,
    reconnect_backoff: Duration,
    max_reconnect_backoff: Duration,
}

impl ClientBuilder {
    /// A client of the server at `addr`.
    pub fn new(addr: Address) -> Self {
        ClientBuilder {
            addr,
            mode: ConnectionMode::Multiplexed,
            connector: Connector::default(),
            limits: Limits::default(),
            max_idle: DEFAULT_MAX_IDLE,
            idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            timeout: Some(DEFAULT_TIMEOUT),
            max_pending: DEFAULT_MAX_PENDING,
            connections: DEFAULT_CONNECTIONS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            reconnect_backoff: DEFAULT_RECONNECT_BACKOFF,
            max_reconnect_backoff: DEFAULT_MAX_RECONNECT_BACKOFF,
        }
    }

    /// Connection mode. Default [`ConnectionMode::Multiplexed`].
    pub fn mode(mut self, mode: ConnectionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Socket options and connect timeout. Default [`Connector::default`].
    pub fn connector(mut self, connector: Connector) -> Self {
        self.connector = connector;
        self
    }

    /// Wire limits for responses, and the write timeout of every
    /// connection. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Idle connections kept by a pooled client. Default 1024.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n.max(1);
        self
    }

    /// How long a pooled connection may stay idle. Default 30 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Timeout of a call that sets no deadline of its own; `None` leaves
    /// such calls without one. A timeout too large to add to the clock
    /// means no deadline. Default [`DEFAULT_TIMEOUT`], 30 s.
    pub fn timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.timeout = d.into();
        self
    }

    /// Calls without a deadline of their own wait for their answer however
    /// long it takes. Same as `timeout(None)`.
    pub fn no_timeout(self) -> Self {
        self.timeout(None)
    }

    /// Calls in flight per multiplexed connection; past it `poll_ready`
    /// waits and a `call` without a reservation fails with
    /// `ResourceExhausted`. Clamped to 1..=65,536. Default 4096.
    pub fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = n.clamp(1, mux::MAX_SLOTS);
        self
    }

    /// Multiplexed connections to the peer; calls are spread over them in
    /// turn. At least 1. Default 1.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Pooled connections open at once; callers past it wait for one to be
    /// returned until their deadline, then fail with `ResourceExhausted`.
    /// At least 1. Default 1024.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Wait after a failed multiplexed connect, doubling on each further
    /// failure up to `max`, reset by a success. While waiting, calls fail
    /// at once with `Unavailable`. Default 50 ms doubling to 5 s.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_backoff = initial;
        self.max_reconnect_backoff = max.max(initial);
        self
    }

    /// The limits this builder will use (codecs take them too).
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// Build the client around `codec`. Connections open on first use.
    pub fn build<C: ClientCodec>(self, codec: C) -> Client<C> {
        let slots = match self.mode {
            ConnectionMode::Multiplexed => (0..self.connections)
                .map(|_| MuxSlot::new(self.max_pending, self.reconnect_backoff))
                .collect(),
            ConnectionMode::Pooled => Vec::new(),
        };
        let inner = Arc::new(Inner {
            codec: Arc::new(codec),
            pool: Pool::new(self.max_connections, stats::counters(&self.addr)),
            slots: slots.into_boxed_slice(),
            next_slot: AtomicUsize::new(0),
            cfg: self,
        });
        let weak: std::sync::Weak<dyn stats::Live> = Arc::downgrade(&inner) as _;
        stats::register(&inner.cfg.addr, weak);
        Client {
            inner,
            reserved: None,
            acquiring: None,
        }
    }
}

// ===== impl Client =====

/// A client of one server: a `tower::Service` from `Request<C::Req>` to
/// `Response<C::Resp>`. Cheap to clone; clones share connections, but a
/// slot reserved by `poll_ready` belongs to the handle that reserved it.
pub struct Client<C: ClientCodec> {
    inner: Arc<Inner<C>>,
    /// The multiplexed slot index and call permit `poll_ready` reserved.
    reserved: Option<(usize, OwnedSemaphorePermit)>,
    /// The slot `poll_ready` is waiting on, with its registered waker.
    acquiring: Option<(usize, PollSemaphore)>,
}

impl<C: ClientCodec> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
            reserved: None,
            acquiring: None,
        }
    }
}

impl<C: ClientCodec> fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.cfg.addr)
            .field("mode", &self.inner.cfg.mode)
            .field("reserved", &self.reserved.is_some())
            .finish()
    }
}

struct Inner<C> {
    codec: Arc<C>,
    cfg: ClientBuilder,
    pool: Pool,
    slots: Box<[MuxSlot]>,
    next_slot: AtomicUsize,
}

impl<C> Inner<C> {
    fn pick_slot(&self) -> usize {
        match self.slots.len() {
            1 => 0,
            n => self.next_slot.fetch_add(1, Ordering::Relaxed) % n,
        }
    }
}

impl<C: ClientCodec> stats::Live for Inner<C> {
    fn add_to(&self, into: &mut PeerStats) {
        match self.cfg.mode {
            ConnectionMode::Pooled => {
                let (open, idle) = self.pool.open_idle(self.cfg.max_connections);
                into.pool_open += open;
                into.pool_idle += idle;
                into.pooled_clients += 1;
            }
            ConnectionMode::Multiplexed => {
                into.mux_in_flight += self
                    .slots
                    .iter()
                    .map(|s| self.cfg.max_pending - s.permits.available_permits())
                    .sum::<usize>();
                into.mux_clients += 1;
            }
        }
    }
}

impl<C> Drop for Inner<C> {
    fn drop(&mut self) {
        // The last handle and the last call are gone: close the connections.
        for slot in self.slots.iter() {
            slot.shutdown();
        }
    }
}

impl<C: ClientCodec> Client<C> {
    /// The server this client talks to.
    pub fn address(&self) -> &Address {
        &self.inner.cfg.addr
    }

    /// The codec, for typed wrappers.
    pub fn codec(&self) -> &C {
        &self.inner.codec
    }
}

impl<C: ClientCodec> Service<Request<C::Req>> for Client<C> {
    type Response = Response<C::Resp>;
    type Error = Status;
    type Future = ResponseFuture<C>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        if self.reserved.is_some() || self.inner.cfg.mode == ConnectionMode::Pooled {
            // Pooled calls wait for a connection in the call, bounded by
            // their own deadline.
            return Poll::Ready(Ok(()));
        }
        let (index, sem) = self.acquiring.get_or_insert_with(|| {
            let index = self.inner.pick_slot();
            let sem = PollSemaphore::new(self.inner.slots[index].permits.clone());
            (index, sem)
        });
        match sem.poll_acquire(cx) {
            Poll::Ready(Some(permit)) => {
                self.reserved = Some((*index, permit));
                if self.inner.slots.len() > 1 {
                    self.acquiring = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(None) => Poll::Ready(Err(
                Status::unavailable("client closed").with_delivery(Delivery::NotSent)
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<C::Req>) -> Self::Future {
        let Request { mut cx, message } = req;
        if cx.deadline.is_none() {
            if let Some(t) = self.inner.cfg.timeout {
                cx.deadline = Instant::now().checked_add(t);
            }
        }
        let inner = self.inner.clone();
        if cx.is_expired() {
            let status = Status::deadline_exceeded("deadline passed before the call was sent")
                .with_delivery(Delivery::NotSent);
            return ResponseFuture::failed(inner, status, cx, message);
        }
        if inner.cfg.mode == ConnectionMode::Pooled {
            // An idle connection at hand: the call runs in this future.
            if let Some(fast) = pool::FastCall::start(&inner, &mut cx, &message) {
                let state = match fast {
                    Ok(call) => State::PoolFast(call),
                    Err(status) => State::Failed(Some(status)),
                };
                return ResponseFuture {
                    sleep: cx.deadline.map(tokio::time::sleep_until),
                    inner,
                    cx: Some(cx),
                    req: Some(message),
                    state,
                };
            }
            return ResponseFuture {
                state: State::Pooled(Box::pin(pool::call(inner.clone(), cx, message))),
                inner,
                cx: None,
                req: None,
                sleep: None,
            };
        }
        let reserved = self.reserved.take().or_else(|| {
            // tower lets a caller skip `poll_ready`; such a call takes a
            // slot if one is free and never waits.
            let index = inner.pick_slot();
            let permit = inner.slots[index]
                .permits
                .clone()
                .try_acquire_owned()
                .ok()?;
            Some((index, permit))
        });
        let Some((index, permit)) = reserved else {
            let status = Status::resource_exhausted(format!(
                "{} calls already in flight to {}",
                inner.cfg.max_pending, inner.cfg.addr
            ))
            .with_delivery(Delivery::NotSent);
            return ResponseFuture::failed(inner, status, cx, message);
        };
        let sleep = cx.deadline.map(tokio::time::sleep_until);
        let state = match inner.slots[index].ready_conn() {
            Some(conn) => match start(&inner, conn, &mut cx, &message) {
                Ok(call) => State::Waiting {
                    call,
                    _permit: permit,
                },
                Err(status) => State::Failed(Some(status)),
            },
            None => State::Connecting {
                fut: Box::pin(mux::connection(inner.clone(), index)),
                permit: Some(permit),
            },
        };
        ResponseFuture {
            inner,
            cx: Some(cx),
            req: Some(message),
            state,
            sleep,
        }
    }
}

/// Hand the call to the connection: sequence id, frame, writer queue.
fn start<C: ClientCodec>(
    inner: &Inner<C>,
    conn: Arc<mux::MuxConn>,
    cx: &mut Context,
    req: &C::Req,
) -> Result<MuxCall, Status> {
    let call = conn.enqueue(cx.oneway, |seq| {
        cx.seq_id = seq;
        encode(inner, seq, cx, req)
    })?;
    Ok(call)
}

/// Encode the call's frame, reporting its size to the call's sink.
fn encode<C: ClientCodec>(
    inner: &Inner<C>,
    seq: i32,
    cx: &Context,
    req: &C::Req,
) -> Result<Bytes, Status> {
    let frame = inner.codec.encode(seq, cx, req)?;
    if let Some(sizes) = &cx.sizes {
        sizes.request(frame.len());
    }
    Ok(frame)
}

/// The response message from an answer frame, or the one-way response;
/// `cx` takes in what the frame says about the call.
fn decode<C: ClientCodec>(
    inner: &Inner<C>,
    cx: &mut Context,
    frame: Option<Bytes>,
) -> Result<C::Resp, Status> {
    cx.peer = Some(inner.cfg.addr.clone());
    // Reported whatever the frame decodes to (a message or an error), and
    // taken off: the response's context must not report again if reused.
    if let (Some(sizes), Some(frame)) = (cx.sizes.take(), &frame) {
        sizes.response(frame.len());
    }
    match frame {
        Some(frame) => inner.codec.decode(cx, frame),
        None => inner.codec.oneway_response(cx),
    }
}

/// A call's error, carrying its request back when it was not sent
/// ([`Status::with_unsent`]): a retry sends it again without having kept
/// a copy. A server's "not processed" answer is such an error too, which is
/// why a call keeps its request until its answer is decoded.
fn hand_back<T: Send + 'static>(status: Status, cx: Option<Context>, req: Option<T>) -> Status {
    match (status.is_not_sent(), cx, req) {
        (true, Some(cx), Some(req)) => status.with_unsent(Request::new(cx, req)),
        _ => status,
    }
}

// ===== impl ResponseFuture =====

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

enum State<C: ClientCodec> {
    /// No open connection yet (the slow path, so boxed).
    Connecting {
        fut: BoxFuture<Result<Arc<mux::MuxConn>, Status>>,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Queued or in flight on a multiplexed connection. The call's entry
    /// is released before its permit (field order), so entries never
    /// outnumber permits.
    Waiting {
        call: MuxCall,
        _permit: OwnedSemaphorePermit,
    },
    /// A pooled call on an idle connection, driven here.
    PoolFast(pool::FastCall),
    /// A pooled call that waits for or opens a connection (the slow path,
    /// so boxed), which does its own I/O and keeps its own deadline.
    Pooled(BoxFuture<Result<Response<C::Resp>, Status>>),
    Failed(Option<Status>),
}

pin_project! {
    /// The future of a client call.
    #[project = Projection]
    pub struct ResponseFuture<C: ClientCodec> {
        inner: Arc<Inner<C>>,
        cx: Option<Context>,
        // Kept until the answer is decoded, to be handed back when the
        // call fails unsent (see `hand_back`). Not there for
        // `State::Pooled`, which hands back its own.
        req: Option<C::Req>,
        state: State<C>,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<C: ClientCodec> fmt::Debug for ResponseFuture<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Connecting { .. } => "connecting",
            State::Waiting { .. } => "waiting",
            State::PoolFast(_) | State::Pooled(_) => "pooled",
            State::Failed(_) => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<C: ClientCodec> ResponseFuture<C> {
    fn failed(inner: Arc<Inner<C>>, status: Status, cx: Context, req: C::Req) -> Self {
        ResponseFuture {
            inner,
            cx: None,
            req: None,
            state: State::Failed(Some(hand_back(status, Some(cx), Some(req)))),
            sleep: None,
        }
    }
}

impl<C: ClientCodec> Future for ResponseFuture<C> {
    type Output = Result<Response<C::Resp>, Status>;

    fn poll(self: Pin<&mut Self>, tcx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = match ready!(poll_answer(&mut this, tcx)) {
            Answer::Done(r) => return Poll::Ready(r),
            Answer::Frame(outcome) => outcome,
        };
        // The call's state is over: its permit and entry are released.
        *this.state = State::Failed(None);
        let message = match this.cx.as_mut() {
            Some(cx) => outcome.and_then(|frame| decode(this.inner, cx, frame)),
            None => Err(Status::internal("polled after completion")),
        };
        Poll::Ready(match message {
            Ok(message) => match this.cx.take() {
                Some(cx) => Ok(Response { cx, message }),
                None => Err(Status::internal("polled after completion")),
            },
            Err(status) => Err(hand_back(status, this.cx.take(), this.req.take())),
        })
    }
}

/// How a call's state ended: a frame (or a one-way write) to decode, or
/// the call's whole outcome.
// Returned by value from a poll and matched at once, never stored: boxing
// the response would cost an allocation per call to save stack bytes.
#[allow(clippy::large_enum_variant)]
enum Answer<C: ClientCodec> {
    Frame(Result<Option<Bytes>, Status>),
    Done(Result<Response<C::Resp>, Status>),
}

/// Drive the call's state until it has an answer or fails; an error that
/// says the call was not sent takes its request back with it.
fn poll_answer<C: ClientCodec>(
    this: &mut Projection<'_, C>,
    tcx: &mut TaskContext<'_>,
) -> Poll<Answer<C>> {
    fn fail<C: ClientCodec>(this: &mut Projection<'_, C>, status: Status) -> Poll<Answer<C>> {
        *this.state = State::Failed(None);
        let status = hand_back(status, this.cx.take(), this.req.take());
        Poll::Ready(Answer::Done(Err(status)))
    }
    loop {
        match this.state {
            State::Failed(status) => {
                let status = status
                    .take()
                    .unwrap_or_else(|| Status::internal("polled after completion"));
                return fail(this, status);
            }
            State::Pooled(fut) => return fut.as_mut().poll(tcx).map(Answer::Done),
            State::PoolFast(call) => {
                let oneway = this.cx.as_ref().is_some_and(|cx| cx.oneway);
                return match call.poll(this.inner, oneway, tcx) {
                    Poll::Ready(r) => Poll::Ready(Answer::Frame(r)),
                    Poll::Pending if !expired(this.sleep.as_mut(), tcx) => Poll::Pending,
                    Poll::Pending => {
                        let status = timed_out(this.inner, this.cx.as_ref(), call.delivery());
                        fail(this, status)
                    }
                };
            }
            State::Connecting { fut, permit } => {
                let conn = match fut.as_mut().poll(tcx) {
                    Poll::Ready(Ok(conn)) => conn,
                    Poll::Ready(Err(status)) => return fail(this, status),
                    Poll::Pending if !expired(this.sleep.as_mut(), tcx) => return Poll::Pending,
                    Poll::Pending => {
                        let status = timed_out(this.inner, this.cx.as_ref(), Delivery::NotSent);
                        return fail(this, status);
                    }
                };
                let (Some(req), Some(permit), Some(cx)) =
                    (this.req.as_ref(), permit.take(), this.cx.as_mut())
                else {
                    return fail(this, Status::internal("polled after completion"));
                };
                *this.state = match start(this.inner, conn, cx, req) {
                    Ok(call) => State::Waiting {
                        call,
                        _permit: permit,
                    },
                    Err(status) => State::Failed(Some(status)),
                };
            }
            State::Waiting { call, .. } => {
                return match call.poll(tcx) {
                    Poll::Ready(r) => Poll::Ready(Answer::Frame(r)),
                    Poll::Pending if !expired(this.sleep.as_mut(), tcx) => Poll::Pending,
                    Poll::Pending => {
                        let State::Waiting { call, .. } =
                            std::mem::replace(this.state, State::Failed(None))
                        else {
                            unreachable!()
                        };
                        let delivery = call.cancel();
                        let status = timed_out(this.inner, this.cx.as_ref(), delivery);
                        fail(this, status)
                    }
                };
            }
        }
    }
}

/// The status of a call whose connection `addr` closed before its answer;
/// `first` says nothing was ever answered on it, when the codec may know why.
fn closed_before_answer<C: ClientCodec>(codec: &C, addr: &Address, first: bool) -> Status {
    let hint = codec.closed_early_hint().filter(|_| first);
    let status = match hint {
        Some(hint) => Status::unavailable(format!(
            "{addr} closed the connection before answering anything on it; {hint}"
        )),
        None => Status::unavailable(format!("{addr} closed the connection before answering")),
    };
    status.with_delivery(Delivery::MaybeSent)
}

fn expired(sleep: Pin<&mut Option<Sleep>>, tcx: &mut TaskContext<'_>) -> bool {
    match sleep.as_pin_mut() {
        Some(s) => s.poll(tcx).is_ready(),
        None => false,
    }
}

fn timed_out<C>(inner: &Inner<C>, cx: Option<&Context>, delivery: Delivery) -> Status {
    let method = cx.map_or("call", |cx| cx.method.as_str());
    Status::deadline_exceeded(format!("{method} to {} timed out", inner.cfg.addr))
        .with_delivery(delivery)
}
