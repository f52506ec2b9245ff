//! The [`RateLimit`] service.

use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use tower::Service;
use weft_core::Status;

use super::Bucket;
use crate::limit::{shed, ResponseFuture};

/// Sheds calls beyond `rate` per second (with bursts up to `burst`) with
/// `ResourceExhausted`. Shared by all clones; admitting a call takes no lock.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    pub(super) inner: S,
    pub(super) bucket: Arc<Bucket>,
}

impl<S> RateLimit<S> {
    /// `rate` calls per second, `burst` at once.
    pub fn new(inner: S, rate: f64, burst: u32) -> Self {
        RateLimit {
            inner,
            bucket: Arc::new(Bucket::new(rate, burst)),
        }
    }

    fn take(&self) -> bool {
        self.bucket.take()
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
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
        if !self.take() {
            self.bucket
                .shed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return ResponseFuture::refused(shed("rate limit"));
        }
        ResponseFuture::new(self.inner.call(req), None)
    }
}
