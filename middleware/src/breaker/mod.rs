//! Circuit breaking: stop sending to what keeps failing, probe it now and
//! then, and resume when it answers again.
//!
//! [`Breaker`] is the state machine — a sliding window of outcomes split into
//! buckets, opening when the error rate over at least `min_samples` calls
//! reaches the threshold; open, it fails fast for `open_for`; then half-open,
//! it lets `probes` calls through and closes when they all succeed. A probe
//! whose call is abandoned before it ends (the loser of a backup request, a
//! total timeout, a caller gone) says nothing about the callee: dropping its
//! [`Permit`] unrecorded gives its place to the next call. The load
//! balancer keeps one per instance and skips open ones; [`CircuitBreaker`]
//! (with [`CircuitBreakerLayer`]) keeps one per method in front of any
//! service.

mod error;
mod future;
mod layer;

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use faststr::FastStr;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;
use tower::Service;
use weft_core::{Code, Delivery, Request, Status};

pub use self::{error::BreakerOpen, future::ResponseFuture, layer::CircuitBreakerLayer};

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
    // Counts half-open spells, so that a probe permit of an earlier spell
    // neither frees a place nor counts in the current one.
    half_open_spell: u64,
    failures_in_a_row: u32,
    /// When a call last failed while closed, so that successes can skip
    /// adding up the window when it holds no failure.
    last_error: Option<Instant>,
    buckets: Vec<Bucket>,
}

/// One circuit breaker. Thread-safe; share it with `Arc`.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    // Mirrors `inner.state == Closed`, written under the lock, so that the
    // common case (closed) is answered without taking it.
    closed: AtomicBool,
    // Shared with the probe permits, which give their place back on drop.
    inner: Arc<Mutex<Inner>>,
    // What its state changes are reported as: scope and name.
    label: Option<(&'static str, FastStr)>,
}

/// Permission to make one call; report its outcome with [`Breaker::record`].
///
/// A permit dropped without being recorded counts as neither success nor
/// failure; if it was a half-open probe, its place goes to the next call.
#[derive(Debug)]
#[must_use]
pub struct Permit {
    probe: Option<Probe>,
}

/// A half-open probe's place, given back when dropped unrecorded.
#[derive(Debug)]
struct Probe {
    inner: Arc<Mutex<Inner>>,
    spell: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.take() {
            let mut inner = probe.inner.lock();
            if inner.state == BreakerState::HalfOpen && inner.half_open_spell == probe.spell {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
            }
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Breaker {
        let buckets = vec![Bucket::default(); config.buckets.max(1)];
        Breaker {
            config,
            closed: AtomicBool::new(true),
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: Instant::now(),
                probes_in_flight: 0,
                probe_successes: 0,
                half_open_spell: 0,
                failures_in_a_row: 0,
                last_error: None,
                buckets,
            })),
            label: None,
        }
    }

    /// Report state changes (metrics and events) as the breaker of `scope`
    /// ("method", "instance") named `name`.
    pub(crate) fn labelled(mut self, scope: &'static str, name: FastStr) -> Breaker {
        self.label = Some((scope, name));
        self
    }

    fn changed(&self, from: BreakerState, to: BreakerState) {
        if from != to {
            if let Some((scope, name)) = &self.label {
                crate::observe::governance::breaker(scope, name, from, to);
            }
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
        if self.closed.load(Ordering::Relaxed) {
            return true;
        }
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
            self.changed(BreakerState::Open, BreakerState::HalfOpen);
            inner.probes_in_flight = 0;
            inner.probe_successes = 0;
            inner.half_open_spell += 1;
        }
    }

    /// Ask to make a call: `Err(Unavailable)` (never sent, [`BreakerOpen`]
    /// as its source) while open.
    pub fn try_acquire(&self) -> Result<Permit, Status> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(Permit { probe: None });
        }
        let mut inner = self.inner.lock();
        self.advance(&mut inner, Instant::now());
        match inner.state {
            BreakerState::Closed => Ok(Permit { probe: None }),
            BreakerState::HalfOpen if inner.probes_in_flight < self.config.probes => {
                inner.probes_in_flight += 1;
                Ok(Permit {
                    probe: Some(Probe {
                        inner: self.inner.clone(),
                        spell: inner.half_open_spell,
                    }),
                })
            }
            _ => Err(Status::unavailable(BreakerOpen(()).to_string())
                .with_delivery(Delivery::NotSent)
                .with_source(BreakerOpen(()))),
        }
    }

    /// Report the outcome of a call made under `permit`.
    pub fn record(&self, mut permit: Permit, success: bool) {
        // Taken out so that dropping the permit gives nothing back twice.
        let probe = permit.probe.take();
        let mut inner = self.inner.lock();
        let before = inner.state;
        self.record_locked(&mut inner, probe, success);
        self.changed(before, inner.state);
        self.closed
            .store(inner.state == BreakerState::Closed, Ordering::Relaxed);
    }

    fn record_locked(&self, inner: &mut Inner, probe: Option<Probe>, success: bool) {
        let now = Instant::now();
        if let Some(probe) = probe {
            if inner.state != BreakerState::HalfOpen || inner.half_open_spell != probe.spell {
                // A probe of a spell that is over: its outcome is stale.
                return;
            }
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
            if success {
                inner.probe_successes += 1;
                if inner.probe_successes >= self.config.probes {
                    inner.state = BreakerState::Closed;
                    // Failures from before it opened must not count towards
                    // reopening it.
                    inner.failures_in_a_row = 0;
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
            inner.last_error = Some(now);
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
        // A success with no error in the window cannot open the breaker:
        // skip adding up the buckets (the common case of every call).
        if success
            && self.config.error_rate > 0.0
            && inner
                .last_error
                .is_none_or(|t| now.duration_since(t) >= self.config.window)
        {
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
            inner.failures_in_a_row = 0;
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
            .or_insert_with(|| {
                let b = Breaker::new(self.config.clone());
                Arc::new(b.labelled("method", FastStr::new(method)))
            })
            .clone()
    }
}

impl<S, T, R> Service<Request<T>> for CircuitBreaker<S>
where
    S: Service<Request<T>, Response = R, Error = Status>,
{
    type Response = R;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<T>) -> Self::Future {
        let breaker = self.breaker(&req.cx.method);
        match breaker.try_acquire() {
            Ok(permit) => ResponseFuture::new(self.inner.call(req), breaker, permit),
            Err(e) => ResponseFuture::refused(e),
        }
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

    // ===== abandoned probes (issue #10) =====

    use crate::timeout::script::{ms, Scripted, Step};
    use tower::{Layer, ServiceExt};
    use weft_core::Context;

    fn req() -> Request<u32> {
        Request::new(Context::new("svc", "get"), 0)
    }

    fn down() -> Step {
        Step::Err(Duration::ZERO, Status::unavailable("down"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_permit_dropped_unrecorded_is_given_back() {
        let b = Breaker::new(cfg());
        for _ in 0..10 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..2 {
            drop(b.try_acquire().unwrap());
        }
        let p1 = b.try_acquire().expect("dropped probes must be given back");
        let p2 = b.try_acquire().unwrap();
        b.record(p1, true);
        b.record(p2, true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_of_an_earlier_half_open_spell_does_not_count() {
        let b = Breaker::new(cfg());
        for _ in 0..10 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let (p1, p2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
        b.record(p1, false);
        tokio::time::advance(Duration::from_secs(5)).await;
        let (q1, q2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
        // The late answer of the first spell neither closes the breaker nor
        // frees a place in the second.
        b.record(p2, true);
        assert!(b.try_acquire().is_err());
        b.record(q1, true);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.record(q2, true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_whose_futures_are_dropped_do_not_keep_it_half_open() {
        // Ten failures open it; then two probes hang and are abandoned (a
        // lost backup request, a total timeout); then the method answers.
        let mut steps: Vec<Step> = (0..10).map(|_| down()).collect();
        steps.extend([
            Step::Ok(Duration::from_secs(3600)),
            Step::Ok(Duration::from_secs(3600)),
        ]);
        let inner = Scripted::new(steps).then_always(Step::Ok(ms(1)));
        let svc = CircuitBreakerLayer::new(cfg()).layer(inner.clone());
        for _ in 0..10 {
            assert!(svc.clone().oneshot(req()).await.is_err());
        }
        assert_eq!(svc.breaker("get").state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..2 {
            let mut fut = svc.clone().oneshot(req());
            // Started, then abandoned before it finishes.
            assert!(futures::poll!(&mut fut).is_pending());
            drop(fut);
        }
        assert_eq!(inner.cancelled(), 2);
        // Never polled at all: dropped straight after `call`.
        let mut s = svc.clone();
        drop(Service::call(&mut s, req()));
        svc.clone()
            .oneshot(req())
            .await
            .expect("admitted as a probe again");
        svc.clone().oneshot(req()).await.unwrap();
        assert_eq!(svc.breaker("get").state(), BreakerState::Closed);
    }
}
