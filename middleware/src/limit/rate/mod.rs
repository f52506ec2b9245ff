//! [`RateLimit`]: calls per second with a burst, the rest shed.

mod layer;
mod service;

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

pub use self::{layer::RateLimitLayer, service::RateLimit};

/// A token bucket as GCRA (the generic cell rate algorithm of ATM, RFC 2697's
/// kin): one atomic "theoretical arrival time" instead of a count of tokens
/// and a clock under a mutex, so admitting a call is a compare-and-swap.
/// A call at `now` is admitted when `tat - now <= (burst - 1) × interval`,
/// and pushes `tat` on by one interval: the same calls as a bucket of
/// `burst` tokens refilled at `rate` per second.
#[derive(Debug)]
pub(super) struct Bucket {
    // Nanoseconds since `origin` at which the bucket would be full again
    // (minus one interval per token spent).
    tat: AtomicU64,
    origin: Instant,
    // Nanoseconds per call, and the slack a burst may use.
    interval: u64,
    tolerance: u64,
    /// As configured, for `/status`.
    rate: f64,
    burst: u32,
    /// Calls refused.
    pub(super) shed: AtomicU64,
}

impl Bucket {
    pub(super) fn new(rate: f64, burst: u32) -> Bucket {
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
            rate,
            burst,
            shed: AtomicU64::new(0),
        }
    }

    /// What `/status` shows of a bucket that may be gone.
    pub(super) fn view(bucket: &std::sync::Arc<Bucket>) -> crate::observe::views::LimitView {
        let weak = std::sync::Arc::downgrade(bucket);
        Box::new(move || {
            let b = weak.upgrade()?;
            Some(crate::observe::views::LimitInfo {
                kind: "rate",
                limit: None,
                in_flight: None,
                rate: Some((b.rate, b.burst)),
                shed: b.shed.load(Ordering::Relaxed),
            })
        })
    }

    pub(super) fn take(&self) -> bool {
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
