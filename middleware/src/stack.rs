//! The default client and server stacks, assembled in DESIGN.md's order,
//! every layer switchable and configurable per method.
//!
//! Client, outside in: total timeout → retry → method circuit breaker →
//! load balancer (with a breaker per instance) → per-attempt timeout →
//! connection. Server: limits (rate, concurrency, adaptive) → deadline check
//! → handler. Both build plain `tower` services, so any other layer wraps
//! them or goes between them by ordinary composition.

use std::time::Duration;

use tower::{util::BoxCloneSyncService, Layer, Service};
use weft_core::{Discover, Instance, Request, Status};

use crate::{
    balance::{Balance, BalanceConfig},
    breaker::{BreakerConfig, CircuitBreaker},
    limit::{AdaptiveConfig, AdaptiveLimitLayer, ConcurrencyLimitLayer, RateLimitLayer},
    retry::RetryLayer,
    timeout::{DeadlineLayer, PerMethod, TimeoutLayer},
};

/// A type-erased client or server stack.
pub type BoxStack<T, R> = BoxCloneSyncService<Request<T>, R, Status>;

/// Configures the default client stack.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientStack {
    total_timeout: Option<TimeoutLayer>,
    retry: Option<RetryLayer>,
    method_breaker: Option<BreakerConfig>,
    balance: BalanceConfig,
    attempt_timeout: Option<TimeoutLayer>,
}

impl Default for ClientStack {
    fn default() -> Self {
        ClientStack {
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
    pub fn build<T, R, S, M>(
        self,
        discover: &dyn Discover,
        service: &str,
        connect: M,
    ) -> Result<BoxStack<T, R>, Status>
    where
        M: Fn(&Instance) -> S + Send + Sync + 'static,
        S: Service<Request<T>, Response = R, Error = Status> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        T: Clone + Send + Sync + 'static,
        R: Send + 'static,
    {
        let attempt = self.attempt_timeout;
        let endpoint = move |inst: &Instance| -> BoxStack<T, R> {
            let conn = connect(inst);
            match &attempt {
                Some(t) => BoxCloneSyncService::new(t.layer(conn)),
                None => BoxCloneSyncService::new(conn),
            }
        };
        let mut svc: BoxStack<T, R> =
            BoxCloneSyncService::new(Balance::new(discover, service, endpoint, self.balance)?);
        if let Some(config) = self.method_breaker {
            svc = BoxCloneSyncService::new(CircuitBreaker::new(svc, config));
        }
        if let Some(retry) = self.retry {
            svc = BoxCloneSyncService::new(retry.layer(svc));
        }
        if let Some(total) = self.total_timeout {
            svc = BoxCloneSyncService::new(total.layer(svc));
        }
        Ok(svc)
    }
}

/// Configures the default server stack.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ServerStack {
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

    /// Wrap `handler` in the stack.
    pub fn build<T, R, S>(self, handler: S) -> BoxStack<T, R>
    where
        S: Service<Request<T>, Response = R, Error = Status> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        T: Send + 'static,
        R: Send + 'static,
    {
        let mut svc: BoxStack<T, R> = match self.deadline {
            Some(d) => BoxCloneSyncService::new(d.layer(handler)),
            None => BoxCloneSyncService::new(handler),
        };
        if let Some(a) = self.adaptive {
            svc = BoxCloneSyncService::new(a.layer(svc));
        }
        if let Some(c) = self.concurrency {
            svc = BoxCloneSyncService::new(c.layer(svc));
        }
        if let Some(r) = self.rate {
            svc = BoxCloneSyncService::new(r.layer(svc));
        }
        svc
    }
}
