//! [`Deadline`]: the server-side deadline check.

use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tower::Service;
use weft_core::{Delivery, Request, Status};

use super::{
    future::{elapsed, ResponseFuture},
    PerMethod,
};

/// Refuses requests whose deadline has passed and cancels handlers that
/// outlive it. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    defaults: Arc<PerMethod<Option<Duration>>>,
}

impl<S> Deadline<S> {
    /// Enforce the deadlines of requests to `inner`.
    pub fn new(inner: S) -> Self {
        Deadline::with_shared(inner, Arc::new(PerMethod::new(None)))
    }

    pub(crate) fn with_shared(inner: S, defaults: Arc<PerMethod<Option<Duration>>>) -> Self {
        Deadline { inner, defaults }
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

impl<S, T, U> Service<Request<T>> for Deadline<S>
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
        if req.cx.deadline.is_none() {
            if let Some(t) = *self.defaults.get(&req.cx.method) {
                req.cx.set_timeout(t);
            }
        }
        if req.cx.is_expired() {
            tracing::debug!(method = %req.cx.method, "refusing a request past its deadline");
            // The server's own refusal: it crosses the wire as not processed.
            let status =
                elapsed("deadline passed before the handler ran", Delivery::NotSent).into_refusal();
            return ResponseFuture::refused(status);
        }
        let deadline = req.cx.deadline;
        ResponseFuture::new(
            self.inner.call(req),
            deadline,
            "deadline passed; handler cancelled",
        )
    }
}
