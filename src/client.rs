//! One builder for a Thrift client with governance built in: what the
//! generated `{Service}Client::builder` returns.
//!
//! The client is a [`ClientStack`](weft_middleware::ClientStack) (total timeout → retry → method breaker →
//! balancer → per-instance Weft clients) over the addresses or discovery
//! given. [`ClientStack`](weft_middleware::ClientStack) stays for full control.

use std::{fmt, marker::PhantomData, sync::Arc, task::Poll, time::Duration};

use weft_core::{
    faststr::FastStr, tower::Service, Address, Client, ClientBuilder, ConnectionMode, Discover,
    Limits, Request, StaticDiscover, Status,
};
use weft_middleware::{
    balance::BalanceConfig, ClientService, ClientStack, ObserveLayer, PerMethod, RetryLayer,
};
use weft_thrift::{EntryMessage, Protocol, ThriftClientCodec, Transport};

/// The service a built client calls through.
pub type ThriftStack<Req, Resp> = SetCaller<ClientService<Client<ThriftClientCodec<Req, Resp>>>>;

/// The total timeout of a call by default: long enough for any ordinary
/// call, short enough that a hung peer is noticed (Kitex has none, Volo 1 s;
/// a caller with a deadline of its own keeps it).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`ThriftClientBuilder::build`] refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither `address`, `addresses` nor `discover` was given.
    NoAddress {
        /// The service the client was for.
        service: FastStr,
    },
    /// An address did not parse.
    BadAddress {
        /// The address as given.
        address: String,
        /// Why.
        reason: String,
    },
    /// `build` ran outside a Tokio runtime.
    NoRuntime,
    /// The stack refused (for example, discovery failed).
    Stack(Status),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoAddress { service } => write!(
                f,
                "client of {service:?}: no address; call .address(..), .addresses(..) or .discover(..)"
            ),
            BuildError::BadAddress { address, reason } => {
                write!(f, "bad address {address:?}: {reason} (expected ip:port, [ipv6]:port, host:port or unix:/path)")
            }
            BuildError::NoRuntime => f.write_str("build() must run inside a Tokio runtime"),
            BuildError::Stack(s) => write!(f, "client stack: {s}"),
        }
    }
}

impl std::error::Error for BuildError {}

enum Target {
    None,
    Addresses(Vec<String>),
    Discover(Arc<dyn Discover>),
}

type Configure = Arc<dyn Fn(ClientBuilder) -> ClientBuilder + Send + Sync>;

/// Configures a Thrift client; every setter names its default.
///
/// Generated clients start one with `builder` (here `HelloClient` from
/// `examples/hello`):
///
/// ```
/// use std::time::Duration;
/// use weft::core::{Context, ServerBuilder};
/// use weft::middleware::RetryLayer;
/// use weft_example_hello::{Greeter, HelloClient, HelloServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = HelloServer::new(Greeter).serve(ServerBuilder::new(), &"127.0.0.1:0".parse()?).await?;
/// let b = HelloServer::new(Greeter).serve(ServerBuilder::new(), &"127.0.0.1:0".parse()?).await?;
///
/// let client = HelloClient::builder("hello")
///     .addresses([a.local_addr().to_string(), b.local_addr().to_string()])
///     .timeout(Duration::from_millis(500))
///     .retry(RetryLayer::default().idempotent(["greet", "lookup"]))
///     .caller("frontend")
///     .build()?;
/// let greeting = client.greet("world".into(), 1).await?;
/// assert_eq!(greeting.text.as_deref(), Some("hello, world"));
///
/// // With a context of the caller's own, the reply's comes back too.
/// let cx = Context::default();
/// let (answer, reply) = client.with_context(&cx).lookup("weft".into()).await?;
/// assert_eq!(&*answer, "an RPC framework");
/// assert_eq!(reply.metainfo.backward.get("served-by").map(|v| v.as_str()), Some("greeter"));
/// assert!(reply.peer.is_some());
/// a.shutdown().await;
/// b.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct ThriftClientBuilder<Req: EntryMessage, Resp: EntryMessage, C> {
    service: FastStr,
    target: Target,
    timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    retry: Option<RetryLayer>,
    balance: BalanceConfig,
    breaker: bool,
    observe: Option<ObserveLayer>,
    caller: Option<FastStr>,
    transport: Transport,
    protocol: Protocol,
    mode: ConnectionMode,
    limits: Limits,
    configure: Option<Configure>,
    wrap: fn(ThriftStack<Req, Resp>) -> C,
    _messages: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req: EntryMessage, Resp: EntryMessage, C> fmt::Debug for ThriftClientBuilder<Req, Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThriftClientBuilder")
            .field("service", &self.service)
            .field("timeout", &self.timeout)
            .field("transport", &self.transport)
            .field("protocol", &self.protocol)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, C> ThriftClientBuilder<Req, Resp, C>
where
    Req: EntryMessage + Clone + Send + Sync + 'static,
    Resp: EntryMessage + Send + Sync + 'static,
{
    /// A client of `service` (the name discovery looks up and metrics
    /// carry), made into `C` by `wrap` (the generated typed client's
    /// `from_service`).
    pub fn new(service: impl Into<FastStr>, wrap: fn(ThriftStack<Req, Resp>) -> C) -> Self {
        ThriftClientBuilder {
            service: service.into(),
            target: Target::None,
            timeout: Some(DEFAULT_CALL_TIMEOUT),
            attempt_timeout: None,
            retry: Some(RetryLayer::default()),
            balance: BalanceConfig::default(),
            breaker: true,
            observe: None,
            caller: None,
            transport: Transport::TTHeader,
            protocol: Protocol::Binary,
            mode: ConnectionMode::Multiplexed,
            limits: Limits::default(),
            configure: None,
            wrap,
            _messages: PhantomData,
        }
    }

    /// Call the server at `address` (`ip:port`, `[ipv6]:port`,
    /// `host:port` resolved at each connect, or `unix:/path`). No default:
    /// one of `address`, `addresses`, `discover` is required.
    pub fn address(self, address: impl Into<String>) -> Self {
        self.addresses([address])
    }

    /// Balance over these addresses (see [`address`](Self::address)).
    pub fn addresses<I, A>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.target = Target::Addresses(addresses.into_iter().map(Into::into).collect());
        self
    }

    /// Balance over what `discover` yields for the service's name.
    pub fn discover(mut self, discover: impl Discover) -> Self {
        self.target = Target::Discover(Arc::new(discover));
        self
    }

    /// Total timeout of a call, retries included; `None` for none (the
    /// connection's own 30 s still applies). Default
    /// [`DEFAULT_CALL_TIMEOUT`], 5 s.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Timeout of each attempt. Default none.
    pub fn attempt_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.attempt_timeout = timeout.into();
        self
    }

    /// Retries: policy, budget and which methods are idempotent (only
    /// calls that were surely not processed are retried otherwise); `None`
    /// turns them off. Default [`RetryLayer::default`].
    pub fn retry(mut self, retry: impl Into<Option<RetryLayer>>) -> Self {
        self.retry = retry.into();
        self
    }

    /// Balancing strategy and per-instance breakers. Default
    /// [`BalanceConfig::default`] (power of two choices).
    pub fn balance(mut self, config: BalanceConfig) -> Self {
        self.balance = config;
        self
    }

    /// A circuit breaker per method. Default on.
    pub fn method_breaker(mut self, on: bool) -> Self {
        self.breaker = on;
        self
    }

    /// Metrics, spans and access log ([`ObserveLayer::client`]). Default off.
    pub fn observe(mut self, layer: impl Into<Option<ObserveLayer>>) -> Self {
        self.observe = layer.into();
        self
    }

    /// This program's service name, sent as the caller of every call that
    /// names none. Default none.
    pub fn caller(mut self, caller: impl Into<FastStr>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// The Thrift transport. Default [`Transport::TTHeader`] (Kitex, Volo).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The Thrift protocol. Default [`Protocol::Binary`].
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Connection mode. Default [`ConnectionMode::Multiplexed`]; use
    /// [`ConnectionMode::Pooled`] for framed or buffered Apache peers.
    pub fn mode(mut self, mode: ConnectionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Wire limits. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Any other option of each instance's [`ClientBuilder`] (connector,
    /// pool sizes, backoff).
    pub fn client_options(
        mut self,
        f: impl Fn(ClientBuilder) -> ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(f));
        self
    }

    /// Build the client. Must run inside a Tokio runtime; connections open
    /// on first use.
    pub fn build(self) -> Result<C, BuildError> {
        let discover: Arc<dyn Discover> = match self.target {
            Target::None => {
                return Err(BuildError::NoAddress {
                    service: self.service,
                })
            }
            Target::Addresses(list) if list.is_empty() => {
                return Err(BuildError::NoAddress {
                    service: self.service,
                })
            }
            Target::Addresses(list) => {
                let mut addrs = Vec::with_capacity(list.len());
                for a in list {
                    match a.parse::<Address>() {
                        Ok(addr) => addrs.push(addr),
                        Err(e) => {
                            return Err(BuildError::BadAddress {
                                address: a,
                                reason: e.to_string(),
                            })
                        }
                    }
                }
                Arc::new(StaticDiscover::from_addresses(addrs))
            }
            Target::Discover(d) => d,
        };
        if tokio_handle_missing() {
            return Err(BuildError::NoRuntime);
        }
        let mut stack = ClientStack::new()
            .observe(self.observe)
            .retry(self.retry)
            .balance(self.balance);
        if !self.breaker {
            stack = stack.method_breaker(None);
        }
        if let Some(t) = self.timeout {
            stack = stack.total_timeout(PerMethod::new(Some(t)));
        }
        if let Some(t) = self.attempt_timeout {
            stack = stack.attempt_timeout(PerMethod::new(Some(t)));
        }
        let (transport, protocol, mode, limits, configure) = (
            self.transport,
            self.protocol,
            self.mode,
            self.limits,
            self.configure,
        );
        let svc = stack
            .build(&*discover, &self.service, move |inst| {
                let mut b = ClientBuilder::new(inst.address.clone())
                    .mode(mode)
                    .limits(limits.clone());
                if let Some(f) = &configure {
                    b = f(b);
                }
                let codec = ThriftClientCodec::new(transport, protocol, b.limits_ref());
                b.build(codec)
            })
            .map_err(BuildError::Stack)?;
        Ok((self.wrap)(SetCaller {
            inner: svc,
            caller: self.caller,
        }))
    }
}

/// The balancer spawns its discovery watcher, which needs a runtime.
fn tokio_handle_missing() -> bool {
    tokio::runtime::Handle::try_current().is_err()
}

/// Sets the caller of calls that name none.
#[derive(Debug, Clone)]
pub struct SetCaller<S> {
    inner: S,
    caller: Option<FastStr>,
}

impl<S> SetCaller<S> {
    /// The service underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, T> Service<Request<T>> for SetCaller<S>
where
    S: Service<Request<T>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<T>) -> S::Future {
        if req.cx.caller.is_empty() {
            if let Some(c) = &self.caller {
                req.cx.caller = c.clone();
            }
        }
        self.inner.call(req)
    }
}
