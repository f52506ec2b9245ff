//! Timeouts and deadlines: [`Timeout`] bounds a call on the client,
//! [`Deadline`] enforces on the server the deadline the caller sent.
//!
//! A Weft call carries its deadline in [`Context::deadline`]; the codecs send
//! it to the server as the remaining budget (TTHeader integer key 12, in
//! milliseconds), the server codec turns it back into an `Instant`, and
//! [`Context::child`] hands it to the next hop. So one deadline set by the
//! first caller bounds the whole tree of calls below it.
//!
//! # Client: [`Timeout`]
//!
//! `Timeout` tightens the request's deadline to `now + timeout` (never
//! loosens it), so the server learns the tighter budget, and races the inner
//! service against it. Where it sits decides what it bounds:
//!
//! - outside [`Retry`](crate::retry::Retry) it is the **total** timeout: the
//!   retry layer sees the deadline and retries only while budget is left;
//! - inside it, it is the **per-attempt** timeout: each attempt gets
//!   `min(total deadline, now + per_attempt)`.
//!
//! A call whose deadline has already passed is refused without calling the
//! inner service, with [`Delivery::NotSent`](weft_core::Delivery). A timeout
//! that fires while the inner call runs returns `DeadlineExceeded` with
//! `Delivery::MaybeSent`: the request may have reached the server.
//!
//! # Server: [`Deadline`]
//!
//! `Deadline` refuses a request whose deadline has passed on arrival with
//! `DeadlineExceeded`, without calling the handler, and otherwise races the
//! handler against the deadline, dropping (cancelling) the handler's future
//! when it passes. Place it after load shedding, just before the handler.
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use weft_middleware::{PerMethod, TimeoutLayer};
//! # use weft_core::{Request, Response, Status};
//! # let client = tower::service_fn(|r: Request<()>| async move { Ok::<_, Status>(Response::new(r.cx, ())) });
//!
//! let client = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1))) // total
//!     // .layer(RetryLayer::new(..))
//!     .layer(TimeoutLayer::per_method(
//!         PerMethod::new(Some(Duration::from_millis(200))).with("scan", None),
//!     )) // per attempt
//!     .service(client);
//! # drop(client);
//! ```

mod deadline;
pub mod error;
pub mod future;
mod layer;
mod per_method;

use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tokio::time::Instant;
use tower::Service;
use weft_core::{Delivery, Request, Status};

use self::future::{elapsed, ResponseFuture};
pub use self::{
    deadline::Deadline,
    error::Elapsed,
    layer::{DeadlineLayer, TimeoutLayer},
    per_method::PerMethod,
};

#[cfg(doc)]
use weft_core::Context;

// ===== impl Timeout =====

/// A client-side timeout per method. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeouts: Arc<PerMethod<Option<Duration>>>,
}

impl<S> Timeout<S> {
    /// Time out every call of `inner` after `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Timeout::with_shared(inner, Arc::new(PerMethod::new(Some(timeout))))
    }

    pub(crate) fn with_shared(inner: S, timeouts: Arc<PerMethod<Option<Duration>>>) -> Self {
        Timeout { inner, timeouts }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, U> Service<Request<T>> for Timeout<S>
where
    S: Service<Request<T>, Response = U, Error = Status>,
{
    type Response = U;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<T>) -> Self::Future {
        let Some(timeout) = *self.timeouts.get(&req.cx.method) else {
            // No timeout for this method: pass through without a timer.
            return ResponseFuture::new(self.inner.call(req), None, "");
        };
        // A timeout too large for the clock sets no deadline of its own.
        let own = Instant::now().checked_add(timeout);
        let deadline = match (req.cx.deadline, own) {
            (Some(d), Some(own)) if d < own => d,
            (_, Some(own)) => own,
            (Some(d), None) => d,
            (None, None) => {
                return ResponseFuture::new(self.inner.call(req), None, "call timed out")
            }
        };
        req.cx.deadline = Some(deadline);
        if req.cx.is_expired() {
            return ResponseFuture::refused(elapsed(
                "deadline passed before the call was sent",
                Delivery::NotSent,
            ));
        }
        ResponseFuture::new(self.inner.call(req), Some(deadline), "call timed out")
    }
}

#[cfg(test)]
pub(crate) mod script;
#[cfg(test)]
mod tests;
