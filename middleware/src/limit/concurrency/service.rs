//! The [`ConcurrencyLimit`] service.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
};

use tower::Service;
use weft_core::Status;

use super::try_take;
use crate::limit::{shed, ResponseFuture};

/// Sheds calls beyond `max` in flight with `ResourceExhausted`. The count is
/// shared by all clones, so one limit covers every connection of a server.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    pub(super) inner: S,
    pub(super) max: usize,
    pub(super) in_flight: Arc<AtomicUsize>,
    pub(super) shed: Arc<AtomicU64>,
}

impl<S> ConcurrencyLimit<S> {
    /// At most `max` calls in flight through `inner`.
    pub fn new(inner: S, max: usize) -> Self {
        ConcurrencyLimit {
            inner,
            max,
            in_flight: Arc::default(),
            shed: Arc::default(),
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

impl<S, Req> Service<Req> for ConcurrencyLimit<S>
where
    S: Service<Req, Error = Status>,
{
    type Response = S::Response;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some(slot) = try_take(&self.in_flight, self.max) else {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return ResponseFuture::refused(shed("concurrency limit"));
        };
        ResponseFuture::new(self.inner.call(req), Some(slot))
    }
}
