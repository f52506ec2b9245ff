//! The server: an accept loop, one reader and one writer task per connection,
//! requests of a connection served concurrently, and graceful shutdown.

use std::{
    collections::VecDeque,
    io,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::{
    codec::{Inbound, ServerCodec},
    discover::{Instance, Registry},
    limits::Limits,
    message::{Request, Response},
    status::Status,
    transport::{Address, Listener, SocketOptions, Stream, WriteHalf},
};

/// How long in-flight calls may take to finish after shutdown starts, by
/// default, before their connections are closed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Read-buffer growth step: small frames from many reads share one allocation.
const READ_CHUNK: usize = 64 * 1024;

/// Frames written with one vectored write at most: past this, a batch gains
/// nothing and delays the first frame.
const MAX_BATCH: usize = 64;

/// Configures and starts a server.
#[derive(Debug, Clone)]
#[must_use]
pub struct ServerBuilder {
    limits: Limits,
    options: SocketOptions,
    drain_timeout: Duration,
    registration: Option<Registration>,
}

/// Where and as what a server announces itself.
#[derive(Clone)]
struct Registration {
    registry: Arc<dyn Registry>,
    service: String,
    instance: Instance,
    advertise: Option<Address>,
    grace: Duration,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("service", &self.service)
            .field("instance", &self.instance)
            .field("grace", &self.grace)
            .finish()
    }
}

/// How long a server that deregistered keeps serving before it drains, by
/// default, so that clients see it leave before it stops answering.
pub const DEFAULT_DEREGISTER_GRACE: Duration = Duration::from_secs(1);

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            limits: Limits::default(),
            options: SocketOptions::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            registration: None,
        }
    }
}

impl ServerBuilder {
    /// A builder with default limits, socket options and drain timeout.
    pub fn new() -> Self {
        ServerBuilder::default()
    }

    /// Wire limits. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Socket options for the listener and accepted sockets. Default
    /// [`SocketOptions::default`].
    pub fn socket_options(mut self, options: SocketOptions) -> Self {
        self.options = options;
        self
    }

    /// Time in-flight calls get to finish after shutdown starts. Default 30 s.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The limits this builder will use (codecs take them too).
    pub fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    /// Register with `registry` as an instance of `service` once listening,
    /// and deregister first on shutdown. `instance` gives weight and tags;
    /// its address is replaced by the bound address unless
    /// [`ServerBuilder::advertise`] says otherwise. Default: no registry.
    pub fn register(
        mut self,
        registry: Arc<dyn Registry>,
        service: impl Into<String>,
        instance: Instance,
    ) -> Self {
        self.registration = Some(Registration {
            registry,
            service: service.into(),
            instance,
            advertise: None,
            grace: DEFAULT_DEREGISTER_GRACE,
        });
        self
    }

    /// The address to register instead of the bound one (behind NAT, or when
    /// bound to 0.0.0.0). Only with [`ServerBuilder::register`].
    pub fn advertise(mut self, addr: Address) -> Self {
        if let Some(r) = &mut self.registration {
            r.advertise = Some(addr);
        }
        self
    }

    /// How long to keep serving between deregistering and draining.
    /// Default 1 s. Only with [`ServerBuilder::register`].
    pub fn deregister_grace(mut self, grace: Duration) -> Self {
        if let Some(r) = &mut self.registration {
            r.grace = grace;
        }
        self
    }

    /// Bind `addr` and serve `service`, with a fresh codec from `make_codec`
    /// for each connection. Returns once the socket listens.
    pub async fn serve<C, F, S>(
        self,
        addr: &Address,
        make_codec: F,
        service: S,
    ) -> io::Result<ServerHandle>
    where
        C: ServerCodec,
        F: Fn() -> C + Send + Sync + 'static,
        S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let listener = Listener::bind(addr, &self.options).await?;
        let local_addr = listener.local_addr()?;
        let graceful = CancellationToken::new();
        let hard = CancellationToken::new();
        let accepted = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            accepted: accepted.clone(),
            limits: self.limits,
            graceful: graceful.clone(),
            hard: hard.clone(),
        });
        let join = tokio::spawn(accept_loop(
            listener,
            make_codec,
            service,
            shared,
            self.drain_timeout,
        ));
        let registration = match self.registration {
            Some(mut r) => {
                r.instance.address = r.advertise.clone().unwrap_or_else(|| local_addr.clone());
                if let Err(e) = r.registry.register(&r.service, &r.instance).await {
                    graceful.cancel();
                    let _ = join.await;
                    return Err(io::Error::other(format!("registering {}: {e}", r.service)));
                }
                Some(r)
            }
            None => None,
        };
        Ok(ServerHandle {
            accepted,
            local_addr,
            graceful,
            hard,
            join,
            registration,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    registration: Option<Registration>,
    accepted: Arc<AtomicUsize>,
    local_addr: Address,
    graceful: CancellationToken,
    hard: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }

    /// Connections accepted since the server started.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Shut down gracefully: deregister (if registered) and keep serving for
    /// the grace period while clients move away; then stop accepting, let
    /// in-flight calls finish within the drain timeout, and close every
    /// connection. Resolves when all is closed.
    pub async fn shutdown(self) {
        if let Some(r) = &self.registration {
            if let Err(e) = r.registry.deregister(&r.service, &r.instance).await {
                tracing::warn!(error = %e, service = %r.service, "deregistering failed");
            }
            tokio::time::sleep(r.grace).await;
        }
        self.graceful.cancel();
        let _ = self.join.await;
    }

    /// Close everything now, abandoning in-flight calls.
    pub async fn abort(self) {
        self.graceful.cancel();
        self.hard.cancel();
        let _ = self.join.await;
    }
}

struct Shared {
    accepted: Arc<AtomicUsize>,
    limits: Limits,
    graceful: CancellationToken,
    hard: CancellationToken,
}

async fn accept_loop<C, F, S>(
    listener: Listener,
    make_codec: F,
    service: S,
    shared: Arc<Shared>,
    drain_timeout: Duration,
) where
    C: ServerCodec,
    F: Fn() -> C + Send + Sync + 'static,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn_slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set stays small.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shared.graceful.cancelled() => break,
            p = conn_slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shared.graceful.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let codec = make_codec();
                conns.spawn(serve_connection(
                    stream,
                    peer,
                    codec,
                    service.clone(),
                    shared.clone(),
                    permit,
                ));
            }
            Err(e) => {
                // Out of descriptors and similar: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // New connections are refused from here on.
    drop(listener);
    let drained = tokio::time::timeout(drain_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain timeout elapsed; closing remaining connections");
        shared.hard.cancel();
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

struct Outbound {
    index: u64,
    frame: Option<Bytes>,
}

async fn serve_connection<C, S>(
    stream: Stream,
    peer: Option<Address>,
    mut codec: C,
    service: S,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
) where
    C: ServerCodec,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Outbound>();
    let limits = &shared.limits;
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight_per_connection));
    // The writer starts with the first frame, once the codec knows whether
    // this connection needs its responses in order.
    let mut unstarted = Some((wr, rx));
    let mut writer: Option<AbortOnDrop> = None;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut index: u64 = 0;
    let mut frame_started: Option<Instant> = None;

    'conn: loop {
        loop {
            let inbound = match codec.decode(&mut buf) {
                Ok(Some(inbound)) => inbound,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(?peer, %status, "closing connection after a bad frame");
                    break 'conn;
                }
            };
            frame_started = None;
            if let Some((wr, rx)) = unstarted.take() {
                writer = Some(AbortOnDrop(tokio::spawn(write_loop(
                    wr,
                    rx,
                    codec.ordered(),
                    limits.write_timeout,
                ))));
            }
            let this = index;
            index += 1;
            match inbound {
                Inbound::Discard(status) => {
                    tracing::debug!(?peer, %status, "dropping a one-way call");
                    let _ = tx.send(Outbound {
                        index: this,
                        frame: None,
                    });
                }
                Inbound::Request {
                    mut req,
                    reply,
                    timeout,
                } => {
                    if let Some(t) = timeout {
                        req.cx.deadline = Instant::now().checked_add(t);
                    }
                    if req.cx.peer.is_none() {
                        req.cx.peer = peer.clone();
                    }
                    let permit = tokio::select! {
                        p = in_flight.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break 'conn,
                        },
                        _ = shared.hard.cancelled() => break 'conn,
                    };
                    spawn_call::<C, S>(
                        this,
                        req,
                        reply,
                        service.clone(),
                        tx.clone(),
                        permit,
                        shared.hard.clone(),
                    );
                }
                Inbound::Reject(reply, status) => {
                    let mut dst = BytesMut::new();
                    let frame = C::encode(reply, Err(status), false, &mut dst)
                        .ok()
                        .map(|()| dst.freeze());
                    let _ = tx.send(Outbound { index: this, frame });
                }
            }
        }

        let wait = if buf.is_empty() {
            if in_flight.available_permits() == limits.max_in_flight_per_connection {
                Some(limits.idle_timeout)
            } else {
                None
            }
        } else {
            let started = *frame_started.get_or_insert_with(Instant::now);
            Some(limits.read_timeout.saturating_sub(started.elapsed()))
        };
        if buf.capacity() - buf.len() < 4096 {
            // Earlier frames are still shared with their handlers, so this
            // allocates: take room for many frames at once.
            buf.reserve(READ_CHUNK);
        }
        let read = async {
            match wait {
                Some(d) => tokio::time::timeout(d, rd.read_buf(&mut buf)).await.ok(),
                None => Some(rd.read_buf(&mut buf).await),
            }
        };
        tokio::select! {
            biased;
            _ = shared.graceful.cancelled() => break,
            r = read => match r {
                Some(Ok(0)) => break,
                Some(Ok(_)) => {
                    if buf.len() > limits.max_frame_len.saturating_add(64 * 1024) {
                        // A codec rejects an oversized frame from its header; this
                        // catches unframed peers whose message never ends.
                        tracing::debug!(?peer, "closing connection: frame exceeds the limit");
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(?peer, error = %e, "read failed");
                    break;
                }
                None => {
                    tracing::debug!(?peer, "closing connection: read or idle timeout");
                    break;
                }
            },
        }
    }
    // Stop reading; answers to what was already read still go out. The writer
    // ends when the last in-flight call drops its sender.
    drop(tx);
    drop(rd);
    if let Some(mut w) = writer {
        let _ = (&mut w.0).await;
    } else if let Some((mut wr, _)) = unstarted {
        let _ = wr.shutdown().await;
    }
}

/// Aborts the writer if the connection task is dropped (hard stop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_call<C, S>(
    index: u64,
    req: Request<C::Req>,
    reply: Option<C::Reply>,
    mut service: S,
    tx: mpsc::UnboundedSender<Outbound>,
    permit: OwnedSemaphorePermit,
    hard: CancellationToken,
) where
    C: ServerCodec,
    S: Service<Request<C::Req>, Response = Response<C::Resp>, Error = Status> + Send + 'static,
    S::Future: Send + 'static,
{
    tokio::spawn(async move {
        let call = async {
            match service.ready().await {
                Ok(svc) => svc.call(req).await,
                Err(e) => Err(e),
            }
        };
        let result = tokio::select! {
            r = AssertUnwindSafe(call).catch_unwind() => match r {
                Ok(r) => r,
                Err(_) => Err(Status::internal("handler panicked")),
            },
            _ = hard.cancelled() => Err(Status::unavailable("server shut down")),
        };
        let frame = reply.map(|reply| encode_or_internal::<C>(reply, result));
        let _ = tx.send(Outbound {
            index,
            frame: frame.flatten(),
        });
        drop(permit);
    });
}

fn encode_or_internal<C: ServerCodec>(
    reply: C::Reply,
    result: Result<Response<C::Resp>, Status>,
) -> Option<Bytes> {
    let mut dst = BytesMut::new();
    match C::encode(reply.clone(), result, false, &mut dst) {
        Ok(()) => Some(dst.freeze()),
        Err(status) => {
            tracing::warn!(%status, "failed to encode a response");
            C::encode(reply, Err(status), false, &mut dst)
                .ok()
                .map(|()| dst.freeze())
        }
    }
}

async fn write_loop(
    mut wr: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    ordered: bool,
    write_timeout: Duration,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_BATCH);
    // Ordered connections park early answers until their turn comes.
    let mut parked: VecDeque<Option<Option<Bytes>>> = VecDeque::new();
    let mut next: u64 = 0;
    let mut place = |out: Outbound, batch: &mut Vec<Bytes>| {
        if !ordered {
            batch.extend(out.frame);
            return;
        }
        let slot = (out.index - next) as usize;
        if parked.len() <= slot {
            parked.resize(slot + 1, None);
        }
        parked[slot] = Some(out.frame);
        while let Some(Some(_)) = parked.front() {
            if let Some(Some(frame)) = parked.pop_front() {
                batch.extend(frame);
            }
            next += 1;
        }
    };
    while let Some(first) = rx.recv().await {
        place(first, &mut batch);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(out) => place(out, &mut batch),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        match tokio::time::timeout(write_timeout, write_all_vectored(&mut wr, &mut batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                return;
            }
            Err(_) => {
                tracing::debug!("write timed out");
                return;
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// Write every frame in `batch` with as few syscalls as the kernel allows,
/// without copying them into one buffer.
pub(crate) async fn write_all_vectored<W>(wr: &mut W, batch: &mut Vec<Bytes>) -> io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use bytes::Buf;
    let mut first = 0;
    while first < batch.len() {
        let mut iov = [io::IoSlice::new(&[]); MAX_BATCH];
        let mut count = 0;
        for (slot, frame) in iov.iter_mut().zip(&batch[first..]) {
            *slot = io::IoSlice::new(frame);
            count += 1;
        }
        let mut n = wr.write_vectored(&iov[..count]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let len = batch[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                batch[first].advance(n);
                n = 0;
            }
        }
    }
    batch.clear();
    Ok(())
}
