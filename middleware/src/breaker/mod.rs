//! Circuit breaking: stop sending to what keeps failing, probe it now and
//! then, and resume when it answers again.
//!
//! [`Breaker`] is the state machine — a sliding window of outcomes split into
//! buckets, opening when the error rate over at least `min_samples` calls
//! reaches the threshold; open, it fails fast for `open_for`; then half-open,
//! it lets `probes` calls through and closes when they all succeed. The load
//! balancer keeps one per instance and skips open ones; [`CircuitBreaker`]
//! (with [`CircuitBreakerLayer`]) keeps one per method in front of any
//! service.

mod layer;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use faststr::FastStr;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;
use tower::Service;
use weft_core::{Code, Delivery, Request, Status};

pub use self::layer::CircuitBreakerLayer;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Span of the sliding window. Default 10 s.
    pub window: Duration,
    /// Buckets the window is split into; older buckets fall off one by one.
    /// Default 10.
    pub buckets: usize,
    /// Calls the window must hold before it may open. Default 20.
    pub min_samples: u32,
    /// Error rate (0..=1) at or above which it opens. Default 0.5.
    pub error_rate: f64,
    /// How long it stays open before probing. Default 5 s.
    pub open_for: Duration,
    /// Successful probes that close it again. Default 3.
    pub probes: u32,
    /// Failures in a row that open it whatever the window says, so a crashed
    /// instance is cut off at once rather than after a window of successes
    /// has been outweighed; `None` disables. Default 10.
    pub consecutive_failures: Option<u32>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: Duration::from_secs(10),
            buckets: 10,
            min_samples: 20,
            error_rate: 0.5,
            open_for: Duration::from_secs(5),
            probes: 3,
            consecutive_failures: Some(10),
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probe calls are let through.
    HalfOpen,
}

/// Which outcomes count against a breaker: failures of the server or the
/// path to it, not the caller's own mistakes.
pub fn is_breaker_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::DataLoss
    )
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    start: Option<Instant>,
    total: u32,
    errors: u32,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    opened_at: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    failures_in_a_row: u32,
    buckets: Vec<Bucket>,
}

/// One circuit breaker. Thread-safe; share it with `Arc`.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to make one call; report its outcome with [`Breaker::record`].
#[derive(Debug)]
#[must_use]
pub struct Permit {
    probe: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Breaker {
        let buckets = vec![Bucket::default(); config.buckets.max(1)];
        Breaker {
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: Instant::now(),
                probes_in_flight: 0,
                probe_successes: 0,
                failures_in_a_row: 0,
                buckets,
            }),
        }
    }

    /// The current state (an open breaker whose time is up reads half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.inner.lock();
        self.advance(&mut inner, Instant::now());
        inner.state
    }

    /// Whether a call would be let through now, without taking a permit.
    pub fn is_available(&self) -> bool {
        let mut inner = self.inner.lock();
        self.advance(&mut inner, Instant::now());
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => inner.probes_in_flight < self.config.probes,
        }
    }

    fn advance(&self, inner: &mut Inner, now: Instant) {
        if inner.state == BreakerState::Open && now >= inner.opened_at + self.config.open_for {
            inner.state = BreakerState::HalfOpen;
            inner.probes_in_flight = 0;
            inner.probe_successes = 0;
        }
    }

    /// Ask to make a call: `Err(Unavailable)` (never sent) while open.
    pub fn try_acquire(&self) -> Result<Permit, Status> {
        let mut inner = self.inner.lock();
        self.advance(&mut inner, Instant::now());
        match inner.state {
            BreakerState::Closed => Ok(Permit { probe: false }),
            BreakerState::HalfOpen if inner.probes_in_flight < self.config.probes => {
                inner.probes_in_flight += 1;
                Ok(Permit { probe: true })
            }
            _ => {
                Err(Status::unavailable("circuit breaker is open").with_delivery(Delivery::NotSent))
            }
        }
    }

    /// Report the outcome of a call made under `permit`.
    pub fn record(&self, permit: Permit, success: bool) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if permit.probe {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
            if inner.state != BreakerState::HalfOpen {
                return;
            }
            if success {
                inner.probe_successes += 1;
                if inner.probe_successes >= self.config.probes {
                    inner.state = BreakerState::Closed;
                    inner
                        .buckets
                        .iter_mut()
                        .for_each(|b| *b = Bucket::default());
                }
            } else {
                inner.state = BreakerState::Open;
                inner.opened_at = now;
            }
            return;
        }
        if inner.state != BreakerState::Closed {
            return;
        }
        let span = self.config.window / inner.buckets.len() as u32;
        let n = inner.buckets.len();
        // The bucket for `now`, started afresh if its last use fell out of the window.
        let idx = bucket_index(now, span, n);
        let b = &mut inner.buckets[idx];
        if b.start.is_none_or(|s| now.duration_since(s) >= span) {
            *b = Bucket {
                start: Some(now),
                total: 0,
                errors: 0,
            };
        }
        b.total += 1;
        if !success {
            b.errors += 1;
        }
        inner.failures_in_a_row = if success {
            0
        } else {
            inner.failures_in_a_row + 1
        };
        if self
            .config
            .consecutive_failures
            .is_some_and(|n| inner.failures_in_a_row >= n)
        {
            inner.state = BreakerState::Open;
            inner.opened_at = now;
            inner.failures_in_a_row = 0;
            return;
        }
        let (mut total, mut errors) = (0u32, 0u32);
        for b in &inner.buckets {
            if let Some(s) = b.start {
                if now.duration_since(s) < self.config.window {
                    total += b.total;
                    errors += b.errors;
                }
            }
        }
        if total >= self.config.min_samples
            && f64::from(errors) >= self.config.error_rate * f64::from(total)
        {
            inner.state = BreakerState::Open;
            inner.opened_at = now;
        }
    }
}

fn bucket_index(now: Instant, span: Duration, n: usize) -> usize {
    // Buckets are indexed by wall-clock slot so that each is reused once per
    // window; the epoch is arbitrary but fixed for the process.
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let slot = now.saturating_duration_since(epoch).as_nanos() / span.as_nanos().max(1);
    (slot % n as u128) as usize
}

// ===== per-method breaker service =====

/// Keeps one [`Breaker`] per method in front of `S`.
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    config: BreakerConfig,
    breakers: Arc<RwLock<HashMap<FastStr, Arc<Breaker>>>>,
}

impl<S> CircuitBreaker<S> {
    /// Wrap `inner` with per-method breakers configured by `config`.
    pub fn new(inner: S, config: BreakerConfig) -> Self {
        CircuitBreaker {
            inner,
            config,
            breakers: Arc::default(),
        }
    }

    /// The breaker of `method`, created closed on first use.
    pub fn breaker(&self, method: &str) -> Arc<Breaker> {
        if let Some(b) = self.breakers.read().get(method) {
            return b.clone();
        }
        self.breakers
            .write()
            .entry(FastStr::new(method))
            .or_insert_with(|| Arc::new(Breaker::new(self.config.clone())))
            .clone()
    }
}

impl<S, T, R> Service<Request<T>> for CircuitBreaker<S>
where
    S: Service<Request<T>, Response = R, Error = Status> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: Send + 'static,
    R: Send + 'static,
{
    type Response = R;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<R, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<T>) -> Self::Future {
        let breaker = self.breaker(&req.cx.method);
        let permit = match breaker.try_acquire() {
            Ok(p) => p,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            let ok = match &r {
                Ok(_) => true,
                Err(e) => !is_breaker_failure(e),
            };
            breaker.record(permit, ok);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_secs(10),
            buckets: 10,
            min_samples: 10,
            error_rate: 0.5,
            open_for: Duration::from_secs(5),
            probes: 2,
            consecutive_failures: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_error_rate_with_enough_samples_then_recovers() {
        let b = Breaker::new(cfg());
        // Nine failures are not enough samples.
        for _ in 0..9 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let p = b.try_acquire().unwrap();
        b.record(p, false);
        assert_eq!(b.state(), BreakerState::Open);
        let e = b.try_acquire().unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        assert!(e.is_not_sent());

        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire().unwrap();
        assert!(
            b.try_acquire().is_err(),
            "only `probes` calls go through half-open"
        );
        b.record(p1, true);
        b.record(p2, true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_in_a_row_open_it_despite_a_window_of_successes() {
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: Some(5),
            ..cfg()
        });
        for _ in 0..1000 {
            let p = b.try_acquire().unwrap();
            b.record(p, true);
        }
        for _ in 0..4 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let p = b.try_acquire().unwrap();
        b.record(p, false);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_old_failures_age_out() {
        let b = Breaker::new(cfg());
        for _ in 0..10 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let p = b.try_acquire().unwrap();
        b.record(p, false);
        assert_eq!(b.state(), BreakerState::Open);

        // A fresh breaker: failures older than the window no longer count.
        let b = Breaker::new(cfg());
        for _ in 0..6 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..6 {
            let p = b.try_acquire().unwrap();
            b.record(p, true);
        }
        for _ in 0..4 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        // 4 errors out of 10 in the window: below 50 %.
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
