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
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use faststr::FastStr;
use parking_lot::Mutex;
use tokio::time::Instant;
use tower::Service;
use weft_core::{Code, Delivery, Request, Status};

use crate::table::MethodMap;

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

/// One bucket of the window: which slot of time it counts, and its calls
/// and errors packed in one word (calls in the high half), so that a call
/// is counted with one atomic add.
#[derive(Debug)]
struct Bucket {
    slot: AtomicU64,
    counts: AtomicU64,
}

/// A bucket slot that no time ever maps to: the bucket is empty.
const NO_SLOT: u64 = u64::MAX;
const CALL: u64 = 1 << 32;
const ERROR: u64 = CALL | 1;

impl Bucket {
    fn empty() -> Bucket {
        Bucket {
            slot: AtomicU64::new(NO_SLOT),
            counts: AtomicU64::new(0),
        }
    }

    fn add(&self, slot: u64, success: bool) {
        let held = self.slot.load(Ordering::Acquire);
        // The first call of a new slot starts the bucket afresh. A call of
        // the new slot that lands between the two stores below is lost:
        // an undercount of one in a statistical window, the price of no
        // lock on every call.
        if held != slot
            && self
                .slot
                .compare_exchange(held, slot, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.counts.store(0, Ordering::Release);
        }
        self.counts
            .fetch_add(if success { CALL } else { ERROR }, Ordering::AcqRel);
    }

    fn clear(&self) {
        self.slot.store(NO_SLOT, Ordering::Release);
        self.counts.store(0, Ordering::Release);
    }
}

/// What changes rarely (state, probes), under a lock; the closed state's
/// counting is in atomics beside it.
#[derive(Debug)]
struct Inner {
    state: BreakerState,
    opened_at: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    // Counts half-open spells, so that a probe permit of an earlier spell
    // neither frees a place nor counts in the current one.
    half_open_spell: u64,
}

/// One circuit breaker. Thread-safe; share it with `Arc`.
///
/// While it is closed — nearly always — a call is admitted and counted
/// with a few atomic operations and no lock, so the callers of a busy
/// instance on every connection do not queue on one mutex. The lock is
/// taken to open it, and for the few calls of its open and half-open
/// spells.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    // Mirrors `inner.state == Closed`, written under the lock, so that the
    // common case (closed) is answered without taking it.
    closed: AtomicBool,
    buckets: Box<[Bucket]>,
    // The span of one bucket, in nanoseconds (at least 1).
    bucket_nanos: u64,
    failures_in_a_row: AtomicU32,
    /// The bucket slot of the last failure while closed, plus one (0:
    /// none), so that successes skip adding up a window with no failure.
    last_error_slot: AtomicU64,
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
        let n = config.buckets.max(1);
        let bucket_nanos = (config.window.as_nanos() / n as u128).clamp(1, u128::from(u64::MAX));
        Breaker {
            closed: AtomicBool::new(true),
            buckets: (0..n).map(|_| Bucket::empty()).collect(),
            bucket_nanos: bucket_nanos as u64,
            failures_in_a_row: AtomicU32::new(0),
            last_error_slot: AtomicU64::new(0),
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: Instant::now(),
                probes_in_flight: 0,
                probe_successes: 0,
                half_open_spell: 0,
            })),
            label: None,
            config,
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
        if self.closed.load(Ordering::Acquire) {
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
        if self.closed.load(Ordering::Acquire) {
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
        match permit.probe.take() {
            Some(probe) => self.record_probe(probe, success),
            None => self.record_closed(success),
        }
    }

    fn record_probe(&self, probe: Probe, success: bool) {
        let mut inner = self.inner.lock();
        if inner.state != BreakerState::HalfOpen || inner.half_open_spell != probe.spell {
            // A probe of a spell that is over: its outcome is stale.
            return;
        }
        inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        if !success {
            self.open(&mut inner, Instant::now());
            return;
        }
        inner.probe_successes += 1;
        if inner.probe_successes >= self.config.probes {
            // Failures from before it opened must not count towards
            // reopening it. Cleared before `closed` is set, so no call of
            // the new closed spell is counted into the old window.
            self.failures_in_a_row.store(0, Ordering::Release);
            self.last_error_slot.store(0, Ordering::Release);
            self.buckets.iter().for_each(Bucket::clear);
            inner.state = BreakerState::Closed;
            self.closed.store(true, Ordering::Release);
            self.changed(BreakerState::HalfOpen, BreakerState::Closed);
        }
    }

    /// The outcome of a call admitted while closed: counted without a lock.
    fn record_closed(&self, success: bool) {
        if !self.closed.load(Ordering::Acquire) {
            // Admitted before it opened: says nothing of the spell now.
            return;
        }
        let now = Instant::now();
        let slot = self.slot(now);
        let n = self.buckets.len() as u64;
        self.buckets[(slot % n) as usize].add(slot, success);
        let in_a_row = if success {
            if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
                self.failures_in_a_row.store(0, Ordering::Relaxed);
            }
            0
        } else {
            self.last_error_slot.store(slot + 1, Ordering::Release);
            self.failures_in_a_row.fetch_add(1, Ordering::AcqRel) + 1
        };
        if self
            .config
            .consecutive_failures
            .is_some_and(|n| in_a_row >= n)
        {
            self.open_if_closed(now);
            return;
        }
        // A success with no error in the window cannot open the breaker:
        // skip adding up the buckets (the common case of every call).
        if success && self.config.error_rate > 0.0 {
            let last = self.last_error_slot.load(Ordering::Acquire);
            if last == 0 || slot.saturating_sub(last - 1) >= n {
                return;
            }
        }
        let (mut total, mut errors) = (0u64, 0u64);
        for b in self.buckets.iter() {
            let held = b.slot.load(Ordering::Acquire);
            if held != NO_SLOT && held <= slot && slot - held < n {
                let c = b.counts.load(Ordering::Acquire);
                total += c >> 32;
                errors += c & 0xffff_ffff;
            }
        }
        if total >= u64::from(self.config.min_samples)
            && errors as f64 >= self.config.error_rate * total as f64
        {
            self.open_if_closed(now);
        }
    }

    fn open_if_closed(&self, now: Instant) {
        let mut inner = self.inner.lock();
        // Another call may have opened it since this one looked.
        if inner.state == BreakerState::Closed {
            self.open(&mut inner, now);
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        let before = inner.state;
        inner.state = BreakerState::Open;
        inner.opened_at = now;
        self.closed.store(false, Ordering::Release);
        self.failures_in_a_row.store(0, Ordering::Release);
        self.changed(before, BreakerState::Open);
    }

    /// The bucket slot `now` falls in: slots are numbered from a fixed
    /// epoch, so each bucket is reused once per window.
    fn slot(&self, now: Instant) -> u64 {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        let nanos = now.saturating_duration_since(epoch).as_nanos();
        (nanos / u128::from(self.bucket_nanos)).min(u128::from(NO_SLOT - 1)) as u64
    }
}

// ===== per-method breaker service =====

/// Keeps one [`Breaker`] per service and method in front of `S`.
///
/// The breakers live in a bounded, write-once table found again on every
/// call without a lock: past [`DEFAULT_MAX_METHODS`](crate::observe::DEFAULT_MAX_METHODS)
/// distinct methods, the rest share one breaker (labelled
/// [`OTHER_METHOD`](crate::observe::OTHER_METHOD)), so made-up method
/// names cannot grow it.
#[derive(Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    config: Arc<BreakerConfig>,
    breakers: Arc<MethodMap<Arc<Breaker>>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("breakers", &self.breakers)
            .finish()
    }
}

impl<S> CircuitBreaker<S> {
    /// Wrap `inner` with per-method breakers configured by `config`.
    pub fn new(inner: S, config: BreakerConfig) -> Self {
        CircuitBreaker {
            inner,
            config: Arc::new(config),
            breakers: Arc::new(MethodMap::new(crate::observe::DEFAULT_MAX_METHODS)),
        }
    }

    /// The breaker of `service`'s `method`, created closed on first use.
    pub fn breaker(&self, service: &str, method: &str) -> Arc<Breaker> {
        self.lookup(&FastStr::new(service), &FastStr::new(method))
            .clone()
    }

    fn lookup(&self, service: &FastStr, method: &FastStr) -> &Arc<Breaker> {
        self.breakers.get_or_insert_with(service, method, |key| {
            // Named by the method alone, as its metrics always were.
            let name = match key {
                Some((_, m)) => m.clone(),
                None => FastStr::from_static_str(crate::observe::OTHER_METHOD),
            };
            Arc::new(Breaker::new((*self.config).clone()).labelled("method", name))
        })
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
        let breaker = self.lookup(&req.cx.service, &req.cx.method).clone();
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

    #[test]
    fn closed_counting_is_exact_across_threads_without_a_lock() {
        // One bucket spanning an hour: no turnover while the test runs, so
        // every count must land.
        let b = Arc::new(Breaker::new(BreakerConfig {
            window: Duration::from_secs(3600),
            buckets: 1,
            min_samples: 100,
            error_rate: 0.5,
            consecutive_failures: None,
            ..BreakerConfig::default()
        }));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let p = b.try_acquire().unwrap();
                        b.record(p, true);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        // 39,999 errors of 79,999 calls is under half...
        for _ in 0..39_999 {
            let p = b.try_acquire().unwrap();
            b.record(p, false);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // ...and the next one makes it half.
        let p = b.try_acquire().unwrap();
        b.record(p, false);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn made_up_method_names_share_one_breaker_past_the_bound() {
        let inner = Scripted::new([]).then_always(Step::Ok(Duration::ZERO));
        let svc = CircuitBreakerLayer::new(cfg()).layer(inner);
        for i in 0..5_000 {
            let r = Request::new(Context::new("svc", format!("m{i}")), 0u32);
            svc.clone().oneshot(r).await.unwrap();
        }
        let held = svc.breakers.iter().count();
        let bound = 2 * crate::observe::DEFAULT_MAX_METHODS + 1;
        assert!(held <= bound, "{held} breakers for 5,000 method names");
        // A method of the first few keeps its own breaker.
        let first = svc.breaker("svc", "m0");
        assert!(Arc::ptr_eq(&first, &svc.breaker("svc", "m0")));
        assert!(!Arc::ptr_eq(&first, &svc.breaker("svc", "m1")));
        assert!(!Arc::ptr_eq(&first, &svc.breaker("other", "m0")));
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
        assert_eq!(svc.breaker("svc", "get").state(), BreakerState::Open);
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
        assert_eq!(svc.breaker("svc", "get").state(), BreakerState::Closed);
    }
}
