//! The future of [`AdaptiveLimit`](super::AdaptiveLimit), and the sample an
//! admitted call reports its outcome through.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use weft_core::Status;

use super::{is_overload, Outcome, Shared};
use crate::limit::concurrency::Slot;

pin_project! {
    /// The future of [`AdaptiveLimit`]: the inner call, whose outcome the
    /// limit learns from when it ends (overload if it is dropped first), or
    /// a shed call's refusal.
    pub struct AdaptiveFuture<F> {
        #[pin]
        pub(super) inner: Option<F>,
        pub(super) sample: Option<Sample>,
        pub(super) refused: Option<Status>,
    }
}

impl<F, R> Future for AdaptiveFuture<F>
where
    F: Future<Output = Result<R, Status>>,
{
    type Output = Result<R, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.refused.take() {
            return Poll::Ready(Err(status));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Status::internal(
                "adaptive limit future polled after completion",
            )));
        };
        let r = std::task::ready!(inner.poll(cx));
        this.inner.set(None);
        if let Some(mut sample) = this.sample.take() {
            let outcome = match &r {
                Ok(_) => Some(Outcome::Answered(sample.started.elapsed())),
                Err(e) if is_overload(e) => Some(Outcome::Overloaded),
                Err(_) => None,
            };
            sample.finish(outcome);
        }
        Poll::Ready(r)
    }
}

impl<F> fmt::Debug for AdaptiveFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveFuture")
            .field("running", &self.inner.is_some())
            .field("refused", &self.refused)
            .finish()
    }
}

/// One admitted call: its slot, and the outcome it reports — overload if it
/// is dropped before it ends (a total timeout or a caller gone).
pub(super) struct Sample {
    pub(super) shared: Arc<Shared>,
    pub(super) started: Instant,
    // `None` once reported.
    pub(super) slot: Option<Slot>,
}

impl Sample {
    fn finish(&mut self, outcome: Option<Outcome>) {
        if let Some(slot) = self.slot.take() {
            // The slot goes first: the outcome is for the calls after it.
            drop(slot);
            if let Some(outcome) = outcome {
                self.shared.observe(outcome);
            }
        }
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        self.finish(Some(Outcome::Overloaded));
    }
}
