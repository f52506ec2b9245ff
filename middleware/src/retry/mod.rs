//! Retries and backup (hedged) requests, within a budget, only when safe.
//!
//! [`Retry`] sends a call again when it failed with a retryable code (see
//! [`RetryPolicy`]), after an exponential [`Backoff`] with jitter, while:
//!
//! - attempts stay within [`RetryPolicy::max_attempts`];
//! - the [`RetryBudget`] allows it: every call deposits, every retry or
//!   backup withdraws, so extra attempts stay within a ratio of calls (10 %
//!   by default) however badly the backend fails;
//! - the call's deadline leaves room: a retry that would start after
//!   `cx.deadline` is not made, so with a total [`Timeout`](crate::Timeout)
//!   outside this layer an attempt's `DeadlineExceeded` is retried only while
//!   the total budget allows;
//! - it is safe. A call that is not idempotent is retried only when the
//!   failed attempt certainly never reached a server
//!   ([`Status::is_not_sent`]: connection refused, no instance); once it may
//!   have ([`Delivery::MaybeSent`](weft_core::Delivery), e.g. an attempt
//!   timed out after the write), it is not.
//!
//! # Copies
//!
//! Only an idempotent call is copied (once, then once per extra attempt but
//! the last): any of its attempts may be repeated. Any other call is sent
//! again only after an attempt that was not sent, and that attempt's
//! refusal hands the request back ([`Status::with_unsent`]), so the layer
//! never copies it. Weft's clients, balancer and breakers all hand back
//! what they refuse; a service of your own that does not is still safe:
//! its unsent failures are just not retried.
//!
//! # Idempotency
//!
//! `Context` says nothing about idempotency, so the layer decides, per
//! method: [`RetryLayer::idempotent`] takes the names of the idempotent
//! methods (a [`PerMethod<bool>`] map with default `false`, see
//! [`RetryLayer::idempotency`]), or [`RetryLayer::idempotent_if`] takes a
//! predicate on the context. The default is that nothing is idempotent: the
//! safe choice, which still retries every call that was never sent.
//!
//! # Backup requests
//!
//! With [`RetryPolicy::hedge`], when an attempt of an idempotent call has not
//! answered after a delay — fixed, or a percentile of the method's recent
//! latencies ([`HedgeDelay`]) — a backup attempt is sent while the first
//! keeps running. The first answer wins; the other attempts' futures are
//! dropped at once. Over a Weft connection that removes the pending call, so
//! a late answer is discarded; the server keeps working until the request's
//! deadline, where its [`Deadline`](crate::Deadline) layer cancels the
//! handler (TTHeader has no cancel frame). Backups count as attempts and
//! draw on the budget.
//!
//! # Telling the next layers which attempt this is
//!
//! Attempts after the first carry the number of earlier attempts in the
//! transient metainfo key [`PREVIOUS_ATTEMPTS`] (like gRPC's
//! `grpc-previous-rpc-attempts`), so a balancer can pick another instance
//! and the server can log it.
//!
//! # Placement
//!
//! Outside in: total [`Timeout`](crate::Timeout) → `Retry` → circuit breaker
//! → load balancer → per-attempt `Timeout` → connection.
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use weft_middleware::{HedgeDelay, PerMethod, RetryLayer, RetryPolicy, TimeoutLayer};
//! # use weft_core::{Request, Response, Status};
//! # let client = tower::service_fn(|r: Request<()>| async move { Ok::<_, Status>(Response::new(r.cx, ())) });
//!
//! let policy = PerMethod::new(RetryPolicy::default())
//!     .with("get", RetryPolicy::default().hedge(HedgeDelay::percentile(95.0, Duration::from_millis(20))))
//!     .with("upload", RetryPolicy::never());
//! let client = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .layer(RetryLayer::new(policy).idempotent(["get", "list"]))
//!     .layer(TimeoutLayer::new(Duration::from_millis(300)))
//!     .service(client);
//! # drop(client);
//! ```

mod budget;
pub mod future;
mod latency;
mod layer;
mod policy;

use std::{
    fmt,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use tower::Service;
use weft_core::{Context, Request, Status};

pub use self::{
    budget::{RetryBudget, DEFAULT_MIN_PER_SEC, DEFAULT_RATIO, DEFAULT_TTL},
    layer::RetryLayer,
    policy::{Backoff, HedgeDelay, RetryPolicy, DEFAULT_MAX_ATTEMPTS},
};
use self::{future::ResponseFuture, latency::Latencies};
pub use crate::timeout::PerMethod;

/// The transient metainfo key under which attempts after the first carry
/// the number of earlier attempts of the same call ("1", "2", …).
pub const PREVIOUS_ATTEMPTS: &str = "previous-rpc-attempts";

// ===== impl Retry =====

/// Retries and hedges calls of the inner service. See the
/// [module docs](self). Requests must be `Clone`, though only idempotent
/// calls are copied (see "Copies" there).
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

#[derive(Clone)]
pub(crate) enum Idempotency {
    Methods(PerMethod<bool>),
    Predicate(Arc<dyn Fn(&Context) -> bool + Send + Sync>),
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Idempotency::Methods(m) => f.debug_tuple("Methods").field(m).finish(),
            Idempotency::Predicate(_) => f.write_str("Predicate"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Shared {
    policies: PerMethod<RetryPolicy>,
    idempotency: Idempotency,
    budget: RetryBudget,
    latencies: Arc<Latencies>,
}

impl Shared {
    fn idempotent(&self, cx: &Context) -> bool {
        match &self.idempotency {
            Idempotency::Methods(m) => *m.get(&cx.method),
            Idempotency::Predicate(p) => p(cx),
        }
    }
}

impl<S> Retry<S> {
    /// Retry calls of `inner` as `layer` says.
    pub fn new(inner: S, layer: &RetryLayer) -> Self {
        tower::Layer::layer(layer, inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T> Service<Request<T>> for Retry<S>
where
    S: Service<Request<T>, Error = Status> + Clone,
    T: Clone + 'static,
{
    type Response = S::Response;
    type Error = Status;
    type Future = ResponseFuture<S, T>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<T>) -> Self::Future {
        self.shared.budget.deposit();
        let policy = *self.shared.policies.get(&req.cx.method);
        let idempotent = self.shared.idempotent(&req.cx);
        // The ready service goes with the future, for every attempt; this
        // one keeps a fresh clone (tower-service's advice).
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(svc, req, policy, idempotent, self.shared.clone())
    }
}

#[cfg(test)]
mod tests;
