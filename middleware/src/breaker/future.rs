//! The future of [`CircuitBreaker`](super::CircuitBreaker).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use weft_core::Status;

use super::{is_breaker_failure, Breaker, Permit};

pin_project! {
    /// Runs the inner call under a breaker permit and records its outcome.
    /// The permit lives in the future, so a call dropped before it ends
    /// gives back its probe place (see [`Permit`]) instead of holding it for
    /// ever.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // `None` once recorded, or for a refused call.
        guard: Option<(Arc<Breaker>, Permit)>,
        refused: Option<Status>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, breaker: Arc<Breaker>, permit: Permit) -> Self {
        ResponseFuture {
            inner: Some(inner),
            guard: Some((breaker, permit)),
            refused: None,
        }
    }

    /// A call the breaker refused: fails at once, the inner service uncalled.
    pub(super) fn refused(status: Status) -> Self {
        ResponseFuture {
            inner: None,
            guard: None,
            refused: Some(status),
        }
    }
}

impl<F, R> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, Status>>,
{
    type Output = Result<R, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.refused.take() {
            return Poll::Ready(Err(status));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Status::internal(
                "breaker future polled after completion",
            )));
        };
        let out = std::task::ready!(inner.poll(cx));
        this.inner.set(None);
        if let Some((breaker, permit)) = this.guard.take() {
            let ok = match &out {
                Ok(_) => true,
                Err(e) => !is_breaker_failure(e),
            };
            breaker.record(permit, ok);
        }
        Poll::Ready(out)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("running", &self.inner.is_some())
            .field("refused", &self.refused)
            .finish()
    }
}
