//! The server: an accept loop, one task per connection that reads, runs its
//! handlers in place and writes, bounds on everything a peer can make it
//! hold, and graceful shutdown.
//!
//! - `accept`: the listener, the connection slots, the drain.
//! - `conn`: one connection, a state machine polled by its own task.
//! - `write`: the write buffer, and the permits of the answers in it.
//! - `budget`: what the whole server may hold, shared by its connections.
//! - `protocol`: other protocols (gRPC) recognised by their first bytes.

mod accept;
mod budget;
mod conn;
mod faults;
mod protocol;
mod write;

pub use protocol::{Accepted, Prefixed, Protocol, Shutdown};

use std::{
    io,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::{
    codec::ServerCodec,
    discover::{Instance, Registry},
    limits::Limits,
    message::{Request, Response},
    status::Status,
    transport::{Address, Listener, SocketOptions},
};

/// How long in-flight calls may take to finish after shutdown starts, by
/// default, before their connections are closed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a closing connection keeps reading (and discarding) after it
/// half-closed, by default: closing a socket with unread data makes the
/// kernel reset it, and a reset discards answers the peer has not read yet.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

/// How long a draining connection with nothing in flight waits for more
/// requests before it closes, by default: requests already on the wire
/// still arrive and get a "not processed" answer instead of a reset.
pub const DEFAULT_DRAIN_QUIET: Duration = Duration::from_millis(200);

/// Configures and starts a server.
///
/// Serves any `tower::Service` through a codec made per connection; the
/// generated servers' `serve` wraps this.
///
/// ```
/// use weft_core::{Address, ConnectionMode, ServerBuilder};
/// use weft_interop::{EchoClient, EchoHandler, EchoRequest, EchoResponse};
/// use weft_thrift::{Protocol, ThriftServerCodec, Transport};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let builder = ServerBuilder::new().drain_timeout(std::time::Duration::from_secs(5));
/// let limits = builder.limits_ref().clone();
/// let server = builder
///     .serve(
///         &"127.0.0.1:0".parse::<Address>()?,
///         move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
///         EchoHandler::default(),
///     )
///     .await?;
///
/// // One port answers TTHeader, THeader, framed and buffered Thrift.
/// for transport in [Transport::TTHeader, Transport::Framed, Transport::Buffered] {
///     let client = EchoClient::new(server.local_addr(), transport, Protocol::Binary, ConnectionMode::Multiplexed);
///     assert_eq!(client.add(Default::default(), 40, 2).await?, 42);
/// }
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ServerBuilder {
    limits: Limits,
    options: SocketOptions,
    drain_timeout: Duration,
    registration: Option<Registration>,
    spawn_handlers: bool,
    linger: Duration,
    drain_quiet: Duration,
    protocols: protocol::Protocols,
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
            spawn_handlers: false,
            linger: DEFAULT_LINGER,
            drain_quiet: DEFAULT_DRAIN_QUIET,
            protocols: protocol::Protocols::default(),
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

    /// Run each handler on a task of its own instead of on its connection's
    /// task. Default `false`: a handler that is ready at once (most are)
    /// then costs no spawn and no cross-thread hop. Turn it on for handlers
    /// that burn CPU, so one connection's calls use every core.
    pub fn spawn_handlers(mut self, spawn: bool) -> Self {
        self.spawn_handlers = spawn;
        self
    }

    /// How long a closing connection reads and discards after half-closing,
    /// so that the kernel does not reset it over unread bytes. Default 1 s.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How long a draining connection with nothing in flight waits for more
    /// requests (each answered "not processed") before it closes.
    /// Default 200 ms.
    pub fn drain_quiet(mut self, quiet: Duration) -> Self {
        self.drain_quiet = quiet;
        self
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

    /// Serve `protocol` beside the codec on the same listener: connections
    /// that begin with its preface are handed to it (gRPC beside Thrift on
    /// one port). Connection slots, limits and shutdown apply to them alike.
    pub fn protocol(mut self, protocol: impl Protocol) -> Self {
        self.protocols.0.push(Arc::new(protocol));
        self
    }

    /// Bind `addr` and serve only the protocols added with
    /// [`ServerBuilder::protocol`]: a connection that begins with none of
    /// their prefaces is closed.
    pub async fn serve_protocols(self, addr: &Address) -> io::Result<ServerHandle> {
        if self.protocols.0.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "serve_protocols needs at least one protocol",
            ));
        }
        let service = tower::service_fn(|_: Request<()>| {
            std::future::ready(Err::<Response<()>, _>(Status::unimplemented(
                "no protocol served here matched",
            )))
        });
        self.serve(addr, || protocol::Unmatched, service).await
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
        let aborted = CancellationToken::new();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let limit_reached = Arc::new(AtomicUsize::new(0));
        let signalled = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            signalled: signalled.clone(),
            accepted: accepted.clone(),
            open: open.clone(),
            limit_reached: limit_reached.clone(),
            budget: budget::Budget::new(&self.limits),
            limits: self.limits,
            graceful: graceful.clone(),
            hard: hard.clone(),
            aborted: aborted.clone(),
            spawn_handlers: self.spawn_handlers,
            linger: self.linger,
            drain_quiet: self.drain_quiet,
            protocols: self.protocols,
            drain_deadline: Arc::default(),
            faults: faults::PeerFaults::new(Duration::from_secs(1)),
        });
        let join = tokio::spawn(accept::accept_loop(
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
                    signalled.store(true, Ordering::Release);
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
            open,
            limit_reached,
            local_addr,
            stopping: CancellationToken::new(),
            signalled,
            graceful,
            aborted,
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
    open: Arc<AtomicUsize>,
    limit_reached: Arc<AtomicUsize>,
    local_addr: Address,
    /// Fired first thing in `shutdown` and `abort`, before deregistering.
    stopping: CancellationToken,
    /// Set before `graceful` fires: see [`Shared::signalled`].
    signalled: Arc<AtomicBool>,
    graceful: CancellationToken,
    aborted: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

/// A read-only view of a running server, for readiness probes and status
/// pages: whether its shutdown has begun (set at the very start of
/// [`ServerHandle::shutdown`], before deregistering, the grace period and
/// the drain, or of [`ServerHandle::abort`]), so that a load balancer stops
/// sending work while the server still serves; and its connection count.
/// Cheap to clone; all clones see the same server.
#[derive(Debug, Clone)]
pub struct ServerWatch {
    stopping: CancellationToken,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    limit_reached: Arc<AtomicUsize>,
    local_addr: Address,
}

impl ServerWatch {
    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub async fn shutting_down(&self) {
        self.stopping.cancelled().await
    }

    /// Connections accepted since the server started.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now (draining ones included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Times the server reached `Limits::max_connections` and stopped
    /// accepting until a connection closed (connections past the limit
    /// wait in the listen backlog: none is refused).
    pub fn limit_reached(&self) -> usize {
        self.limit_reached.load(Ordering::Relaxed)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }
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

    /// Connections open now (draining ones included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A view of this server for readiness probes and status pages:
    /// whether shutdown has begun, connections accepted and open.
    pub fn watch(&self) -> ServerWatch {
        ServerWatch {
            stopping: self.stopping.clone(),
            accepted: self.accepted.clone(),
            open: self.open.clone(),
            limit_reached: self.limit_reached.clone(),
            local_addr: self.local_addr.clone(),
        }
    }

    /// Shut down gracefully: deregister (if registered) and keep serving for
    /// the grace period while clients move away; then stop accepting and
    /// drain. Draining connections keep reading: calls in flight finish,
    /// new ones are answered "not processed" (safe to retry elsewhere) with
    /// Kitex's connection-reset flag on TTHeader. A connection closes once
    /// nothing is in flight and its peer has gone quiet: it half-closes and
    /// lingers so that no answer is lost to a reset. Calls still running at
    /// the drain timeout are answered `Unavailable` (they may have run).
    /// Resolves when all is closed.
    pub async fn shutdown(self) {
        self.stopping.cancel();
        if let Some(r) = &self.registration {
            if let Err(e) = r.registry.deregister(&r.service, &r.instance).await {
                tracing::warn!(error = %e, service = %r.service, "deregistering failed");
            }
            tokio::time::sleep(r.grace).await;
        }
        self.signalled.store(true, Ordering::Release);
        self.graceful.cancel();
        let _ = self.join.await;
    }

    /// Close everything now, abandoning in-flight calls and unwritten
    /// answers: nothing is waited for.
    pub async fn abort(self) {
        self.stopping.cancel();
        self.aborted.cancel();
        self.signalled.store(true, Ordering::Release);
        self.graceful.cancel();
        let _ = self.join.await;
    }
}

/// What every connection of one server shares.
struct Shared {
    accepted: Arc<AtomicUsize>,
    /// Connections open now.
    open: Arc<AtomicUsize>,
    /// Times the accept loop stopped at the connection limit.
    limit_reached: Arc<AtomicUsize>,
    /// Set before `graceful` or `hard` fires. A connection polls those
    /// tokens' futures (a lock each) only when this is set or its waker
    /// changed, not on every turn of its loop: its waker, registered with
    /// them once, is woken when they fire.
    signalled: Arc<AtomicBool>,
    limits: Limits,
    budget: budget::Budget,
    graceful: CancellationToken,
    hard: CancellationToken,
    aborted: CancellationToken,
    spawn_handlers: bool,
    linger: Duration,
    drain_quiet: Duration,
    protocols: protocol::Protocols,
    /// Set when the drain starts.
    drain_deadline: Arc<parking_lot::Mutex<Option<std::time::Instant>>>,
    faults: faults::PeerFaults,
}
