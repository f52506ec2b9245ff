use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tokio::time::Instant;
use tower::{Layer, Service};
use weft_core::Status;

/// A token bucket as GCRA (the generic cell rate algorithm of ATM, RFC 2697's
/// kin): one atomic "theoretical arrival time" instead of a count of tokens
/// and a clock under a mutex, so admitting a call is a compare-and-swap.
/// A call at `now` is admitted when `tat - now <= (burst - 1) × interval`,
/// and pushes `tat` on by one interval: the same calls as a bucket of
/// `burst` tokens refilled at `rate` per second.
#[derive(Debug)]
struct Bucket {
    // Nanoseconds since `origin` at which the bucket would be full again
    // (minus one interval per token spent).
    tat: AtomicU64,
    origin: Instant,
    // Nanoseconds per call, and the slack a burst may use.
    interval: u64,
    tolerance: u64,
}

impl Bucket {
    fn new(rate: f64, burst: u32) -> Bucket {
        // A rate of 0 (or below) admits only the first burst, ever. Rounded
        // up, so the limit never admits more than its rate.
        let interval = if rate > 0.0 {
            (1e9 / rate).ceil().clamp(1.0, u64::MAX as f64 / 4.0) as u64
        } else {
            u64::MAX / 4
        };
        Bucket {
            tat: AtomicU64::new(0),
            origin: Instant::now(),
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1)) - 1),
        }
    }

    fn take(&self) -> bool {
        let now = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let from = tat.max(now);
            if from - now > self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                from.saturating_add(self.interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

/// Sheds calls beyond `rate` per second (with bursts up to `burst`) with
/// `ResourceExhausted`. Shared by all clones; admitting a call takes no lock.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Bucket>,
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
    bucket: Arc<Bucket>,
}

impl RateLimitLayer {
    /// `rate` calls per `per`, `burst` at once.
    pub fn new(calls: u32, per: Duration, burst: u32) -> Self {
        RateLimitLayer {
            bucket: Arc::new(Bucket::new(f64::from(calls) / per.as_secs_f64(), burst)),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}
