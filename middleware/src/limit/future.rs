//! The future of [`ConcurrencyLimit`](super::ConcurrencyLimit) and
//! [`RateLimit`](super::RateLimit): the inner call, or a shed call's refusal.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use weft_core::Status;

use super::concurrency::Slot;

pin_project! {
    /// Runs the inner call, holding its concurrency slot (if any) until it
    /// ends; or fails at once with the refusal of a shed call.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        slot: Option<Slot>,
        refused: Option<Status>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, slot: Option<Slot>) -> Self {
        ResponseFuture {
            inner: Some(inner),
            slot,
            refused: None,
        }
    }

    pub(super) fn refused(status: Status) -> Self {
        ResponseFuture {
            inner: None,
            slot: None,
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
                "limit future polled after completion",
            )));
        };
        let out = std::task::ready!(inner.poll(cx));
        this.inner.set(None);
        this.slot.take();
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
