//! The [`AdaptiveLimit`] service.

use std::{
    sync::{atomic::Ordering, Arc},
    task::{Context as TaskContext, Poll},
};

use tokio::time::Instant;
use tower::Service;
use weft_core::Status;

use super::{future::Sample, AdaptiveConfig, AdaptiveFuture, Shared};
use crate::limit::{concurrency::try_take, shed};

/// A concurrency limit that adapts to latency and to overload; calls beyond
/// it are shed with `ResourceExhausted`. Shared by all clones.
///
/// It learns from every call it admits: answers by their latency, and
/// timeouts (`DeadlineExceeded`), sheds by inner layers (`ResourceExhausted`)
/// and calls dropped before they end as overload, which cuts the limit (see
/// [`OVERLOAD_BACKOFF`](super::OVERLOAD_BACKOFF)). Other errors teach it nothing.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S> AdaptiveLimit<S> {
    /// An adaptive limit in front of `inner`.
    pub fn new(inner: S, config: AdaptiveConfig) -> Self {
        AdaptiveLimit {
            inner,
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }
}

impl<S, Req> Service<Req> for AdaptiveLimit<S>
where
    S: Service<Req, Error = Status>,
{
    type Response = S::Response;
    type Error = Status;
    type Future = AdaptiveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let limit = self.shared.limit.load(Ordering::Relaxed);
        let Some(slot) = try_take(&self.shared.in_flight, limit) else {
            self.shared.shed.fetch_add(1, Ordering::Relaxed);
            return AdaptiveFuture {
                inner: None,
                sample: None,
                refused: Some(shed("adaptive limit")),
            };
        };
        let sample = Sample {
            shared: self.shared.clone(),
            started: Instant::now(),
            slot: Some(slot),
        };
        AdaptiveFuture {
            inner: Some(self.inner.call(req)),
            sample: Some(sample),
            refused: None,
        }
    }
}
