//! Warnings about what peers get wrong, rate-limited per server.
//!
//! A bad frame closes only its connection, but an operator must hear of it:
//! a peer speaking the wrong transport looks exactly like a silent outage.
//! One warning a second per server is enough to be seen; a flood of bad
//! frames then costs a counter, not a flood of log lines, and the next
//! warning says how many were not logged.

use std::{
    fmt::Display,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::Address;

/// The rate limit on peer-fault warnings of one server.
#[derive(Debug)]
pub(crate) struct PeerFaults {
    epoch: Instant,
    interval: Duration,
    /// The interval (counted from `epoch`, plus one) of the last warning.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl PeerFaults {
    pub(crate) fn new(interval: Duration) -> Self {
        PeerFaults {
            epoch: Instant::now(),
            interval: interval.max(Duration::from_millis(1)),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a warning may go out at `now`; if so, how many were held
    /// back since the last one.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let slot = (now.saturating_duration_since(self.epoch).as_nanos() / self.interval.as_nanos())
            as u64
            + 1;
        let last = self.last.load(Ordering::Relaxed);
        if slot > last
            && self
                .last
                .compare_exchange(last, slot, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Report that `peer` got `what` wrong (`reason`): a warning when the
    /// rate allows, a debug line otherwise.
    pub(crate) fn report(&self, peer: Option<&Address>, what: &str, reason: &dyn Display) {
        match self.admit(Instant::now()) {
            Some(suppressed) => tracing::warn!(
                peer = ?peer,
                %reason,
                suppressed,
                "{what} (closing only this connection; `suppressed` similar warnings were not logged)"
            ),
            None => tracing::debug!(peer = ?peer, %reason, "{what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_and_the_count_of_the_rest() {
        let f = PeerFaults::new(Duration::from_secs(1));
        let t0 = f.epoch;
        assert_eq!(f.admit(t0), Some(0));
        for i in 1..=99 {
            assert_eq!(f.admit(t0 + Duration::from_millis(i * 5)), None);
        }
        assert_eq!(f.admit(t0 + Duration::from_millis(1_000)), Some(99));
        assert_eq!(f.admit(t0 + Duration::from_millis(1_500)), None);
        // A quiet spell: the next fault is logged at once.
        assert_eq!(f.admit(t0 + Duration::from_secs(60)), Some(1));
    }
}
