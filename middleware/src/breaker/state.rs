//! The state machine of one breaker: a sliding window counted in atomic
//! buckets while closed, a lock for the rare open and half-open spells.

use std::{
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    sync::Arc,
};

use faststr::FastStr;
use parking_lot::Mutex;
use tokio::time::Instant;
use weft_core::{Delivery, Status};

use super::{BreakerConfig, BreakerOpen, BreakerState};

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
