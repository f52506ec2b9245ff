use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;
use tower::{Layer, Service};
use weft_core::Status;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Sheds calls beyond `rate` per second (with bursts up to `burst`) with
/// `ResourceExhausted`. Shared by all clones.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    rate: f64,
    burst: f64,
    bucket: Arc<Mutex<Bucket>>,
}

impl<S> RateLimit<S> {
    /// `rate` calls per second, `burst` at once.
    pub fn new(inner: S, rate: f64, burst: u32) -> Self {
        RateLimit {
            inner,
            rate,
            burst: f64::from(burst.max(1)),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(burst.max(1)),
                last: Instant::now(),
            })),
        }
    }

    fn take(&self) -> bool {
        let now = Instant::now();
        let mut b = self.bucket.lock();
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
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
        if !self.take() {
            return super::ResponseFuture::refused(super::shed("rate limit"));
        }
        super::ResponseFuture::new(self.inner.call(req), None)
    }
}

/// Applies a [`RateLimit`]; every service it wraps shares one bucket.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    rate: f64,
    burst: u32,
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    /// `rate` calls per `per`, `burst` at once.
    pub fn new(calls: u32, per: Duration, burst: u32) -> Self {
        RateLimitLayer {
            rate: f64::from(calls) / per.as_secs_f64(),
            burst,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(burst.max(1)),
                last: Instant::now(),
            })),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            rate: self.rate,
            burst: f64::from(self.burst.max(1)),
            bucket: self.bucket.clone(),
        }
    }
}
