//! [`RetryBudget`]: caps retries and backup requests to a ratio of calls.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;

/// Ratio of extra attempts to calls allowed by default: 10 %.
pub const DEFAULT_RATIO: f64 = 0.1;
/// Extra attempts allowed per second by default however few calls there
/// are, so a quiet client can still retry.
pub const DEFAULT_MIN_PER_SEC: u32 = 10;
/// How long a deposit counts by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Fixed-point scale: one withdrawal costs this many units.
const UNIT: u64 = 1000;
/// The window is kept as this many slots that expire one at a time.
const SLOTS: usize = 10;

/// A retry budget, as in Finagle and tower's `TpsBudget`: every call
/// deposits `ratio`, every retry or backup request withdraws one, and a
/// withdrawal succeeds only while the extra attempts of the last `ttl` stay
/// within `max(ratio × calls, min_per_sec × ttl)`.
///
/// So under a failing backend the load amplification is at most
/// `1 + ratio` once traffic exceeds `min_per_sec / ratio` calls per second,
/// and a quiet client may still make `min_per_sec` extra attempts per second.
/// Unlike tower's budget the minimum is a floor, not an addition: with
/// `ratio` 10 % and 1,000 failing calls in ten seconds, at most 100 retries
/// are made, not 100 + 100.
///
/// Cheap to clone; clones share the balance, so one budget can cover
/// several layers or clients.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Shared>,
    deposit: u64,
    floor: u64,
    slot_len: Duration,
    unlimited: bool,
}

/// The balance. Deposits (one per call) and withdrawals (one per retry)
/// touch only atomics; the lock is taken to move to the next slot (once per
/// `ttl / SLOTS`).
#[derive(Debug)]
struct Shared {
    deposited: [AtomicU64; SLOTS],
    withdrawn: [AtomicU64; SLOTS],
    current: AtomicUsize,
    /// When the current slot ends, in nanoseconds since `epoch`.
    slot_end: AtomicU64,
    epoch: Instant,
    rotation: Mutex<Instant>,
}

impl Shared {
    fn now(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(DEFAULT_TTL, DEFAULT_MIN_PER_SEC, DEFAULT_RATIO)
    }
}

impl RetryBudget {
    /// A budget where deposits count for `ttl`, at least `min_per_sec`
    /// extra attempts per second are allowed, and otherwise at most `ratio`
    /// extra attempts per call (0.1 = 10 %; may exceed 1).
    ///
    /// Panics if `ttl` is under a millisecond or longer than a day, or `ratio`
    /// is negative or not finite: these are programming errors.
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f64) -> Self {
        assert!(
            ttl >= Duration::from_millis(1) && ttl <= Duration::from_secs(86_400),
            "retry budget ttl must be between 1 ms and 1 day"
        );
        assert!(
            ratio.is_finite() && ratio >= 0.0,
            "retry budget ratio must be finite and not negative"
        );
        let floor = (min_per_sec as f64 * ttl.as_secs_f64() * UNIT as f64) as u64;
        let slot_len = ttl / SLOTS as u32;
        let epoch = Instant::now();
        RetryBudget {
            inner: Arc::new(Shared {
                deposited: Default::default(),
                withdrawn: Default::default(),
                current: AtomicUsize::new(0),
                slot_end: AtomicU64::new(slot_len.as_nanos() as u64),
                epoch,
                rotation: Mutex::new(epoch),
            }),
            deposit: (ratio * UNIT as f64).round() as u64,
            floor,
            slot_len,
            unlimited: false,
        }
    }

    /// A budget that never refuses (for hedging every call in tests, or when
    /// another mechanism bounds the load).
    pub fn unlimited() -> Self {
        RetryBudget {
            unlimited: true,
            ..RetryBudget::new(DEFAULT_TTL, 0, 0.0)
        }
    }

    /// Record a call.
    pub fn deposit(&self) {
        if self.unlimited || self.deposit == 0 {
            return;
        }
        let st = &*self.inner;
        if st.now() >= st.slot_end.load(Ordering::Acquire) {
            drop(self.rotate());
        }
        let i = st.current.load(Ordering::Acquire);
        st.deposited[i].fetch_add(self.deposit, Ordering::Relaxed);
    }

    /// Take one extra attempt from the budget; false when none is left.
    ///
    /// Lock-free but when a slot ends (as [`deposit`](Self::deposit)):
    /// withdrawals compare-and-swap the current slot, so concurrent ones
    /// are serialised there and never overdraw it; only a withdrawal racing
    /// the move to the next slot can see a stale sum of the others.
    pub fn withdraw(&self) -> bool {
        if self.unlimited {
            return true;
        }
        let st = &*self.inner;
        if st.now() >= st.slot_end.load(Ordering::Acquire) {
            drop(self.rotate());
        }
        let deposited: u64 = st.deposited.iter().map(|d| d.load(Ordering::Relaxed)).sum();
        let limit = deposited.max(self.floor);
        let i = st.current.load(Ordering::Acquire);
        let others: u64 = st
            .withdrawn
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, w)| w.load(Ordering::Relaxed))
            .sum();
        st.withdrawn[i]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (others + w + UNIT <= limit).then_some(w + UNIT)
            })
            .is_ok()
    }

    /// Move on to the slot `now` falls in, clearing the ones passed over.
    /// Returns the lock, which serialises rotations.
    fn rotate(&self) -> parking_lot::MutexGuard<'_, Instant> {
        let st = &*self.inner;
        let mut slot_start = st.rotation.lock();
        let elapsed = Instant::now().saturating_duration_since(*slot_start);
        if elapsed < self.slot_len {
            return slot_start;
        }
        let n = (elapsed.as_nanos() / self.slot_len.as_nanos().max(1)) as usize;
        let mut current = st.current.load(Ordering::Acquire);
        for _ in 0..n.min(SLOTS) {
            current = (current + 1) % SLOTS;
            st.deposited[current].store(0, Ordering::Relaxed);
            st.withdrawn[current].store(0, Ordering::Relaxed);
        }
        st.current.store(current, Ordering::Release);
        *slot_start += self.slot_len * n.min(u32::MAX as usize) as u32;
        let end = (*slot_start + self.slot_len).saturating_duration_since(st.epoch);
        st.slot_end.store(end.as_nanos() as u64, Ordering::Release);
        slot_start
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("deposit", &self.deposit)
            .field("floor", &self.floor)
            .field("ttl", &(self.slot_len * SLOTS as u32))
            .field("unlimited", &self.unlimited)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ratio_bounds_withdrawals_above_the_floor() {
        let b = RetryBudget::new(Duration::from_secs(10), 10, 0.1);
        for _ in 0..2000 {
            b.deposit();
        }
        let n = (0..1000).take_while(|_| b.withdraw()).count();
        assert_eq!(n, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn floor_allows_a_quiet_client_to_retry_and_is_not_added() {
        let b = RetryBudget::new(Duration::from_secs(10), 10, 0.1);
        assert_eq!((0..1000).take_while(|_| b.withdraw()).count(), 100);
        for _ in 0..1000 {
            b.deposit();
        }
        // 1000 calls × 10 % = 100, already spent from the floor.
        assert!(!b.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_and_withdrawals_expire_after_ttl() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 0.5);
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!((0..100).take_while(|_| b.withdraw()).count(), 5);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!b.withdraw());
        b.deposit();
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }

    #[test]
    fn concurrent_withdrawals_never_overdraw() {
        // Slots of 2.4 h: no rotation during the test.
        let b = RetryBudget::new(Duration::from_secs(86_400), 0, 0.1);
        for _ in 0..1000 {
            b.deposit();
        }
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let taken: usize = (0..8)
            .map(|_| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..1000).filter(|_| b.withdraw()).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(taken, 100, "1,000 calls at 10 % allow 100 extra attempts");
    }

    #[test]
    fn unlimited_never_refuses() {
        let b = RetryBudget::unlimited();
        assert!((0..10_000).all(|_| b.withdraw()));
    }
}
