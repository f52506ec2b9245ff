//! Recent latencies per method, for backup requests sent at a percentile.

use std::{collections::HashMap, time::Duration};

use parking_lot::Mutex;
use weft_core::faststr::FastStr;

use super::policy::HedgeDelay;

/// Samples kept per method.
const WINDOW: usize = 256;
/// Samples needed before the percentile replaces the initial delay.
const WARM: usize = 32;
/// The percentile is recomputed after this many new samples, not on each.
const RECOMPUTE_EVERY: u32 = 16;

#[derive(Debug, Default)]
pub(super) struct Latencies {
    methods: Mutex<HashMap<FastStr, Window>>,
}

#[derive(Debug, Default)]
struct Window {
    samples: Vec<Duration>,
    next: usize,
    fresh: u32,
    cached: Option<(u64, Duration)>,
}

impl Latencies {
    pub(super) fn record(&self, method: &FastStr, latency: Duration) {
        let mut methods = self.methods.lock();
        let w = match methods.get_mut(method.as_str()) {
            Some(w) => w,
            None => methods.entry(method.clone()).or_default(),
        };
        if w.samples.len() < WINDOW {
            w.samples.push(latency);
        } else {
            w.samples[w.next] = latency;
        }
        w.next = (w.next + 1) % WINDOW;
        w.fresh += 1;
    }

    /// When to send a backup request for a call of `method`.
    pub(super) fn delay(&self, method: &str, hedge: &HedgeDelay) -> Duration {
        let (percentile, initial, min, max) = match *hedge {
            HedgeDelay::Fixed(d) => return d,
            HedgeDelay::Percentile {
                percentile,
                initial,
                min,
                max,
            } => (percentile, initial, min, max),
        };
        let mut methods = self.methods.lock();
        let Some(w) = methods.get_mut(method) else {
            return initial;
        };
        if w.samples.len() < WARM {
            return initial;
        }
        let key = percentile.to_bits();
        let stale = w.fresh >= RECOMPUTE_EVERY || w.cached.is_none_or(|(k, _)| k != key);
        if stale {
            let mut sorted = w.samples.clone();
            sorted.sort_unstable();
            let rank = (percentile.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64).round();
            w.cached = Some((key, sorted[rank as usize]));
            w.fresh = 0;
        }
        let d = w.cached.map(|(_, d)| d).unwrap_or(initial);
        d.clamp(min, max.max(min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_after_warm_up_within_bounds() {
        let l = Latencies::default();
        let m = FastStr::from_static_str("get");
        let hedge = HedgeDelay::Percentile {
            percentile: 90.0,
            initial: Duration::from_millis(50),
            min: Duration::from_millis(2),
            max: Duration::from_millis(200),
        };
        assert_eq!(l.delay("get", &hedge), Duration::from_millis(50));
        for i in 1..=100 {
            l.record(&m, Duration::from_millis(i));
        }
        assert_eq!(l.delay("get", &hedge), Duration::from_millis(90));
        let hedge = HedgeDelay::Percentile {
            percentile: 99.0,
            initial: Duration::from_millis(50),
            min: Duration::from_millis(2),
            max: Duration::from_millis(80),
        };
        assert_eq!(l.delay("get", &hedge), Duration::from_millis(80));
        assert_eq!(
            l.delay("get", &HedgeDelay::fixed(Duration::from_millis(3))),
            Duration::from_millis(3)
        );
    }
}
