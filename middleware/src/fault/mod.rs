//! Fault injection: delay, fail or abort a share of calls, per method, for
//! tests and chaos drills.
//!
//! [`FaultConfig`] describes what to do to one method's calls, each with its own
//! probability (0 to 1, drawn independently per call):
//!
//! - **delay**: wait before calling the inner service (a slow network or a
//!   slow instance);
//! - **error**: return the given [`Status`] without calling the inner
//!   service. Its [`Delivery`](weft_core::Delivery) is what you give it: on a
//!   client, `Unavailable` with `Delivery::NotSent` looks like a refused
//!   connection, the default `MaybeSent` like a failure after the write; on
//!   a server, only a [`Status::refused`](weft_core::Status::refused) error
//!   crosses the wire as "not processed" (a shed), anything else as "may
//!   have been processed";
//! - **abort**: call the inner service, let it start (poll it once: a client
//!   writes its request, a handler begins), then drop it and return
//!   `Unavailable` with `Delivery::MaybeSent` — a connection cut mid-call.
//!
//! Delay applies first; then error, else abort, is drawn. On a server, put
//! [`FaultLayer`] around the handler; on a client, below the retry layer to
//! see how retries cope, or at the bottom to fault a connection.
//!
//! ```
//! use std::time::Duration;
//! use weft_core::Status;
//! use weft_middleware::{FaultConfig, FaultLayer, PerMethod};
//!
//! let layer = FaultLayer::new(
//!     PerMethod::new(FaultConfig::none())
//!         .with("get", FaultConfig::none().delay(0.1, Duration::from_millis(200)))
//!         .with("put", FaultConfig::none().error(0.05, Status::unavailable("injected")).abort(0.01)),
//! );
//! # drop(layer);
//! ```

pub mod future;
mod layer;

use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tower::Service;
use weft_core::{Request, Status};

use self::future::{Action, ResponseFuture};
pub use self::layer::FaultLayer;
use crate::timeout::PerMethod;

/// The faults to inject into one method's calls. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    delay: Option<(f64, Duration)>,
    error: Option<(f64, Status)>,
    abort: f64,
}

impl FaultConfig {
    /// No fault.
    pub fn none() -> Self {
        FaultConfig::default()
    }

    /// Delay a share `probability` of calls by `delay`.
    #[must_use]
    pub fn delay(mut self, probability: f64, delay: Duration) -> Self {
        self.delay = Some((probability, delay));
        self
    }

    /// Fail a share `probability` of calls with `status`, without calling the
    /// inner service.
    #[must_use]
    pub fn error(mut self, probability: f64, status: Status) -> Self {
        self.error = Some((probability, status));
        self
    }

    /// Abort a share `probability` of calls after they started.
    #[must_use]
    pub fn abort(mut self, probability: f64) -> Self {
        self.abort = probability;
        self
    }

    fn is_none(&self) -> bool {
        self.delay.is_none() && self.error.is_none() && self.abort <= 0.0
    }
}

/// True with probability `p`; no random draw for 0 or 1.
fn chance(p: f64) -> bool {
    if p <= 0.0 || p.is_nan() {
        false
    } else if p >= 1.0 {
        true
    } else {
        rand::random::<f64>() < p
    }
}

// ===== impl Fault =====

/// Injects [`FaultConfig`]s into calls of the inner service.
#[derive(Debug, Clone)]
pub struct Fault<S> {
    inner: S,
    faults: Arc<PerMethod<FaultConfig>>,
}

impl<S> Fault<S> {
    /// Inject `faults` into calls of `inner`.
    pub fn new(inner: S, faults: impl Into<PerMethod<FaultConfig>>) -> Self {
        Fault {
            inner,
            faults: Arc::new(faults.into()),
        }
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

impl<S, T> Service<Request<T>> for Fault<S>
where
    S: Service<Request<T>, Error = Status> + Clone,
{
    type Response = S::Response;
    type Error = Status;
    type Future = ResponseFuture<S, Request<T>, S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<T>) -> Self::Future {
        let fault = self.faults.get(&req.cx.method);
        if fault.is_none() {
            return ResponseFuture::call(self.inner.call(req), false);
        }
        let action = match &fault.error {
            Some((p, status)) if chance(*p) => Action::Fail(status.clone()),
            _ if chance(fault.abort) => Action::Abort,
            _ => Action::Pass,
        };
        match fault.delay {
            Some((p, delay)) if chance(p) => {
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::delayed(delay, svc, req, action)
            }
            _ => match action {
                Action::Fail(status) => ResponseFuture::fail(status),
                Action::Abort => ResponseFuture::call(self.inner.call(req), true),
                Action::Pass => ResponseFuture::call(self.inner.call(req), false),
            },
        }
    }
}

#[cfg(test)]
mod tests;
