//! The future of [`Timeout`](super::Timeout) and [`Deadline`](super::Deadline).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use weft_core::{Delivery, Status};

use super::error::Elapsed;

pin_project! {
    /// Races the inner future against a deadline. When the deadline passes
    /// first, the inner future is dropped at once (which cancels it) and a
    /// `DeadlineExceeded` status is returned.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        #[pin]
        sleep: Option<Sleep>,
        refused: Option<Status>,
        on_elapsed: &'static str,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, deadline: Option<Instant>, on_elapsed: &'static str) -> Self {
        ResponseFuture {
            inner: Some(inner),
            sleep: deadline.map(tokio::time::sleep_until),
            refused: None,
            on_elapsed,
        }
    }

    /// A future that fails at once without the inner service being called.
    pub(super) fn refused(status: Status) -> Self {
        ResponseFuture {
            inner: None,
            sleep: None,
            refused: Some(status),
            on_elapsed: "",
        }
    }
}

/// `DeadlineExceeded` with [`Elapsed`] as its source.
pub(super) fn elapsed(message: &'static str, delivery: Delivery) -> Status {
    Status::deadline_exceeded(message)
        .with_delivery(delivery)
        .with_source(Elapsed::new())
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, Status>>,
{
    type Output = Result<T, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.refused.take() {
            return Poll::Ready(Err(status));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Status::internal(
                "timeout future polled after completion",
            )));
        };
        if let Poll::Ready(out) = inner.poll(cx) {
            this.inner.set(None);
            return Poll::Ready(out);
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            if sleep.poll(cx).is_ready() {
                // Drop the inner future now rather than with this one: on a
                // server that is what cancels the handler.
                this.inner.set(None);
                return Poll::Ready(Err(elapsed(this.on_elapsed, Delivery::MaybeSent)));
            }
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("running", &self.inner.is_some())
            .field("deadline", &self.sleep.as_ref().map(|s| s.deadline()))
            .finish()
    }
}
