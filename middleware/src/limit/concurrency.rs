use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
};

use tower::{Layer, Service};
use weft_core::Status;

/// Sheds calls beyond `max` in flight with `ResourceExhausted`. The count is
/// shared by all clones, so one limit covers every connection of a server.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    max: usize,
    in_flight: Arc<AtomicUsize>,
}

impl<S> ConcurrencyLimit<S> {
    /// At most `max` calls in flight through `inner`.
    pub fn new(inner: S, max: usize) -> Self {
        ConcurrencyLimit {
            inner,
            max,
            in_flight: Arc::default(),
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Releases a slot when the call ends, however it ends.
pub(crate) struct Slot(pub(crate) Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Take a slot if fewer than `max` are taken.
pub(crate) fn try_take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(count.clone()))
}

impl<S, Req> Service<Req> for ConcurrencyLimit<S>
where
    S: Service<Req, Error = Status>,
{
    type Response = S::Response;
    type Error = Status;
    type Future = super::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some(slot) = try_take(&self.in_flight, self.max) else {
            return super::ResponseFuture::refused(super::shed("concurrency limit"));
        };
        super::ResponseFuture::new(self.inner.call(req), Some(slot))
    }
}

/// Applies a [`ConcurrencyLimit`]; every service it wraps shares one count.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    max: usize,
    in_flight: Arc<AtomicUsize>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` calls in flight.
    pub fn new(max: usize) -> Self {
        ConcurrencyLimitLayer {
            max,
            in_flight: Arc::default(),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            max: self.max,
            in_flight: self.in_flight.clone(),
        }
    }
}
