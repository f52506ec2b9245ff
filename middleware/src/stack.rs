//! The default client and server stacks, assembled in DESIGN.md's order,
//! every layer switchable and configurable per method.
//!
//! Client, outside in: observability (off by default) → total timeout → retry → method circuit breaker →
//! load balancer (with a breaker per instance) → per-attempt timeout →
//! connection. Server: observability (off by default) → limits (rate, concurrency, adaptive) → deadline check
//! → handler. Both build plain `tower` services, so any other layer wraps
//! them or goes between them by ordinary composition.

use std::time::Duration;

use tower::{
    util::{BoxCloneSyncService, Either},
    Layer, Service,
};
use weft_core::{Discover, Instance, Request, Status};

use crate::{
    balance::{Balance, BalanceConfig, MakeService},
    breaker::{BreakerConfig, CircuitBreaker},
    limit::{
        AdaptiveConfig, AdaptiveLimit, AdaptiveLimitLayer, ConcurrencyLimit, ConcurrencyLimitLayer,
        RateLimit, RateLimitLayer,
    },
    observe::{Observe, ObserveLayer},
    retry::{Retry, RetryLayer},
    timeout::{Deadline, DeadlineLayer, PerMethod, Timeout, TimeoutLayer},
};

/// A type-erased client or server stack, for holding either without naming
/// its type: `BoxCloneSyncService::new(stack)` (one allocation per call).
pub type BoxStack<T, R> = BoxCloneSyncService<Request<T>, R, Status>;

/// Configures the default client stack.
///
/// Full control over what the generated clients' `builder` assembles:
/// observability → total timeout → retry → method breaker → balancer →
/// per-attempt timeout → one connection service per instance.
///
/// ```
/// use std::time::Duration;
/// use weft::core::{tower::ServiceExt, ConnectionMode, Context, Instance, Request, ServerBuilder, StaticDiscover};
/// use weft::thrift::{Protocol, Transport};
/// use weft_interop::{EchoAddArgsSend, EchoAddResultSend, EchoClient, EchoHandler, EchoRequest, EchoResponse};
/// use weft_middleware::{ClientStack, PerMethod, RetryLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = weft_interop::serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default()).await?;
/// let b = weft_interop::serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default()).await?;
/// let discover = StaticDiscover::from_addresses([a.local_addr().clone(), b.local_addr().clone()]);
///
/// let client = ClientStack::new()
///     .total_timeout(PerMethod::new(Some(Duration::from_secs(1))))
///     .retry(Some(RetryLayer::default().idempotent(["add"])))
///     .build(&discover, "Echo", |inst: &Instance| {
///         EchoClient::new(&inst.address, Transport::TTHeader, Protocol::Binary, ConnectionMode::Multiplexed).inner
///     })?;
/// for i in 0..4 {
///     let req = Request::new(Context::new("Echo", "add"), EchoRequest::Add(EchoAddArgsSend { a: i, b: 1 }));
///     let resp = client.clone().oneshot(req).await?;
///     assert_eq!(resp.message, EchoResponse::Add(EchoAddResultSend::Ok(i + 1)));
/// }
/// a.shutdown().await;
/// b.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientStack {
    observe: Option<ObserveLayer>,
    total_timeout: Option<TimeoutLayer>,
    retry: Option<RetryLayer>,
    method_breaker: Option<BreakerConfig>,
    balance: BalanceConfig,
    attempt_timeout: Option<TimeoutLayer>,
}

impl Default for ClientStack {
    fn default() -> Self {
        ClientStack {
            observe: None,
            total_timeout: None,
            retry: Some(RetryLayer::default()),
            method_breaker: Some(BreakerConfig::default()),
            balance: BalanceConfig::default(),
            attempt_timeout: None,
        }
    }
}

impl ClientStack {
    /// The default stack: no timeouts (a call's own deadline still applies),
    /// retries of what is safe within a 10 % budget, a breaker per method,
    /// power-of-two-choices balancing with a breaker per instance.
    pub fn new() -> Self {
        ClientStack::default()
    }

    /// Metrics, a span per call and the access log, outside everything
    /// else ([`ObserveLayer::client`]); `None` turns them off. Default off.
    pub fn observe(mut self, layer: Option<ObserveLayer>) -> Self {
        self.observe = layer;
        self
    }

    /// Total timeout per method, retries included. Default none.
    pub fn total_timeout(mut self, timeouts: PerMethod<Option<Duration>>) -> Self {
        self.total_timeout = Some(TimeoutLayer::per_method(timeouts));
        self
    }

    /// Timeout of each attempt, per method. Default none.
    pub fn attempt_timeout(mut self, timeouts: PerMethod<Option<Duration>>) -> Self {
        self.attempt_timeout = Some(TimeoutLayer::per_method(timeouts));
        self
    }

    /// The retry layer (policy per method, idempotency, budget); `None`
    /// turns retries off. Default [`RetryLayer::default`].
    pub fn retry(mut self, retry: Option<RetryLayer>) -> Self {
        self.retry = retry;
        self
    }

    /// Per-method breakers; `None` turns them off. Default on.
    pub fn method_breaker(mut self, config: Option<BreakerConfig>) -> Self {
        self.method_breaker = config;
        self
    }

    /// The balancer's strategy and instance breakers.
    /// Default [`BalanceConfig::default`].
    pub fn balance(mut self, config: BalanceConfig) -> Self {
        self.balance = config;
        self
    }

    /// Build the stack for `service`, balancing over what `discover` yields,
    /// with `connect` making the connection service of each instance
    /// (typically a Weft client). Must be called inside a Tokio runtime.
    ///
    /// The stack is a plain, nameable type ([`ClientService`]) whose layers
    /// return hand-written futures: a call through it allocates nothing of
    /// its own. Wrap it in a [`BoxStack`] where a type-erased service is
    /// easier to hold.
    pub fn build<T, R, S, M>(
        self,
        discover: &dyn Discover,
        service: &str,
        connect: M,
    ) -> Result<ClientService<S>, Status>
    where
        M: Fn(&Instance) -> S + Send + Sync + 'static,
        S: Service<Request<T>, Response = R, Error = Status> + Clone + Send + Sync + 'static,
        T: Clone,
    {
        let endpoint = MakeEndpoint {
            connect: Box::new(connect),
            attempt: self.attempt_timeout,
        };
        let balance = Balance::new(discover, service, endpoint, self.balance)?;
        if let Some(o) = &self.observe {
            o.add_balancer(service, balance.endpoints_view());
        }
        let svc = match self.method_breaker {
            Some(config) => {
                let breaker = CircuitBreaker::new(balance, config);
                if let Some(o) = &self.observe {
                    o.add_breakers(breaker.view());
                }
                Either::Left(breaker)
            }
            None => Either::Right(balance),
        };
        let svc = match self.retry {
            Some(retry) => Either::Left(retry.layer(svc)),
            None => Either::Right(svc),
        };
        let svc = match self.total_timeout {
            Some(total) => Either::Left(total.layer(svc)),
            None => Either::Right(svc),
        };
        Ok(match self.observe {
            Some(o) => Either::Left(o.layer(svc)),
            None => Either::Right(svc),
        })
    }
}

/// Makes the endpoint service of one instance: the connection, behind the
/// per-attempt timeout when there is one. Called when instances change,
/// never per call.
pub struct MakeEndpoint<S> {
    connect: Box<dyn MakeService<S>>,
    attempt: Option<TimeoutLayer>,
}

impl<S: 'static> MakeService<Endpoint<S>> for MakeEndpoint<S> {
    fn make(&self, instance: &Instance) -> Endpoint<S> {
        let conn = self.connect.make(instance);
        match &self.attempt {
            Some(t) => Either::Left(t.layer(conn)),
            None => Either::Right(conn),
        }
    }
}

impl<S> std::fmt::Debug for MakeEndpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeEndpoint")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
/// One instance's service in a [`ClientService`].
pub type Endpoint<S> = Either<Timeout<S>, S>;
type Balanced<S> = Balance<Endpoint<S>, MakeEndpoint<S>>;
type Broken<S> = Either<CircuitBreaker<Balanced<S>>, Balanced<S>>;
type Retried<S> = Either<Retry<Broken<S>>, Broken<S>>;
type TimedOut<S> = Either<Timeout<Retried<S>>, Retried<S>>;
/// The service [`ClientStack::build`] makes over connection services `S`:
/// observability → total timeout → retry → method breaker → balancer →
/// per-attempt timeout → `S`, each layer present or passed through as
/// configured.
pub type ClientService<S> = Either<Observe<TimedOut<S>>, TimedOut<S>>;

/// Configures the default server stack.
///
/// ```
/// use weft::core::{Address, ConnectionMode, ServerBuilder};
/// use weft::thrift::{Protocol, ThriftServerCodec, Transport};
/// use weft_interop::{EchoClient, EchoHandler, EchoRequest, EchoResponse};
/// use weft_middleware::ServerStack;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // At most 256 calls handled at once; more are shed as "not processed".
/// let handler = ServerStack::new().concurrency_limit(256).build(EchoHandler::default());
/// let builder = ServerBuilder::new();
/// let limits = builder.limits_ref().clone();
/// let server = builder
///     .serve(
///         &"127.0.0.1:0".parse::<Address>()?,
///         move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
///         handler,
///     )
///     .await?;
/// let client = EchoClient::new(server.local_addr(), Transport::TTHeader, Protocol::Binary, ConnectionMode::Multiplexed);
/// assert_eq!(client.add(Default::default(), 1, 2).await?, 3);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ServerStack {
    observe: Option<ObserveLayer>,
    rate: Option<RateLimitLayer>,
    concurrency: Option<ConcurrencyLimitLayer>,
    adaptive: Option<AdaptiveLimitLayer>,
    deadline: Option<DeadlineLayer>,
}

impl ServerStack {
    /// The default: the deadline check, no limits.
    pub fn new() -> Self {
        ServerStack {
            deadline: Some(DeadlineLayer::new()),
            ..ServerStack::default()
        }
    }

    /// Metrics, a span per call and the access log, outside everything
    /// else ([`ObserveLayer::server`]), so that shed calls count too;
    /// `None` turns them off. Default off.
    pub fn observe(mut self, layer: Option<ObserveLayer>) -> Self {
        self.observe = layer;
        self
    }

    /// Shed calls beyond `calls` per `per` (bursts up to `burst`).
    pub fn rate_limit(mut self, calls: u32, per: Duration, burst: u32) -> Self {
        self.rate = Some(RateLimitLayer::new(calls, per, burst));
        self
    }

    /// Shed calls beyond `max` in flight.
    pub fn concurrency_limit(mut self, max: usize) -> Self {
        self.concurrency = Some(ConcurrencyLimitLayer::new(max));
        self
    }

    /// Shed calls beyond an adaptive concurrency limit.
    pub fn adaptive_limit(mut self, config: AdaptiveConfig) -> Self {
        self.adaptive = Some(AdaptiveLimitLayer::new(config));
        self
    }

    /// The deadline check; `None` turns it off. Default on.
    pub fn deadline(mut self, layer: Option<DeadlineLayer>) -> Self {
        self.deadline = layer;
        self
    }

    /// Wrap `handler` in the stack. The stack is a plain, nameable type
    /// ([`ServerService`]) whose layers return hand-written futures: a call
    /// through it allocates nothing of its own (the adaptive limit, when
    /// on, still does).
    pub fn build<T, R, S>(self, handler: S) -> ServerService<S>
    where
        S: Service<Request<T>, Response = R, Error = Status>,
    {
        if let Some(o) = &self.observe {
            // Outside in, as calls meet them.
            if let Some(r) = &self.rate {
                o.add_limit(r.view());
            }
            if let Some(c) = &self.concurrency {
                o.add_limit(c.view());
            }
            if let Some(a) = &self.adaptive {
                o.add_limit(a.view());
            }
        }
        let svc = match self.deadline {
            Some(d) => Either::Left(d.layer(handler)),
            None => Either::Right(handler),
        };
        let svc = match self.adaptive {
            Some(a) => Either::Left(a.layer(svc)),
            None => Either::Right(svc),
        };
        let svc = match self.concurrency {
            Some(c) => Either::Left(c.layer(svc)),
            None => Either::Right(svc),
        };
        let svc = match self.rate {
            Some(r) => Either::Left(r.layer(svc)),
            None => Either::Right(svc),
        };
        match self.observe {
            Some(o) => Either::Left(o.layer(svc)),
            None => Either::Right(svc),
        }
    }
}

type Checked<S> = Either<Deadline<S>, S>;
type Adapted<S> = Either<AdaptiveLimit<Checked<S>>, Checked<S>>;
type Limited<S> = Either<ConcurrencyLimit<Adapted<S>>, Adapted<S>>;
type RateLimited<S> = Either<RateLimit<Limited<S>>, Limited<S>>;
/// The service [`ServerStack::build`] makes around a handler `S`:
/// observability → rate limit → concurrency limit → adaptive limit →
/// deadline check → `S`, each layer present or passed through as
/// configured.
pub type ServerService<S> = Either<Observe<RateLimited<S>>, RateLimited<S>>;
