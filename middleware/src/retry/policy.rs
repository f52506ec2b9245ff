//! [`RetryPolicy`], [`Backoff`] and [`HedgeDelay`]: what a method's calls may
//! retry, how long to wait, and when to send a backup request.

use std::time::Duration;

use weft_core::{Code, Status};

/// Attempts per call by default, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// How one method's calls are retried. Which methods are idempotent is set
/// on the layer ([`RetryLayer::idempotent`](super::RetryLayer::idempotent)),
/// not here, since it is a fact about the method rather than a tuning.
///
/// Retried by default, when the call is idempotent or the request was
/// certainly not sent ([`Status::is_not_sent`]):
///
/// - `Unavailable`: no connection, the peer went away, the instance is
///   draining. Another attempt (usually on another instance) may succeed.
/// - `ResourceExhausted`: the server shed the request under load. Retrying
///   elsewhere is what shedding asks for; the budget and backoff keep the
///   retries from feeding the overload. Remove it with
///   [`retry_on`](Self::retry_on) when the code means a hard quota.
/// - `DeadlineExceeded` of one attempt (a per-attempt timeout below the retry
///   layer), only while the call's own deadline leaves room for the backoff:
///   once the total deadline passes nothing is retried.
///
/// Nothing else is retried: other codes are answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub(super) max_attempts: u32,
    pub(super) backoff: Backoff,
    pub(super) retry_on: u32,
    pub(super) hedge: Option<HedgeDelay>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            retry_on: bit(Code::Unavailable)
                | bit(Code::ResourceExhausted)
                | bit(Code::DeadlineExceeded),
            hedge: None,
        }
    }
}

fn bit(code: Code) -> u32 {
    1 << (code.as_i32() as u32 & 31)
}

impl RetryPolicy {
    /// The default policy: 3 attempts, [`Backoff::default`], retry on
    /// `Unavailable`, `ResourceExhausted` and attempt timeouts, no backup
    /// requests.
    pub fn new() -> Self {
        RetryPolicy::default()
    }

    /// No retries and no backup requests.
    pub fn never() -> Self {
        RetryPolicy::default().max_attempts(1)
    }

    /// Attempts per call including the first (and any backup requests).
    /// Default 3. At least 1.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The wait between a failure and the next attempt. Default
    /// [`Backoff::default`].
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The codes worth retrying, replacing the defaults.
    #[must_use]
    pub fn retry_on(mut self, codes: impl IntoIterator<Item = Code>) -> Self {
        self.retry_on = codes.into_iter().fold(0, |m, c| m | bit(c));
        self
    }

    /// Send a backup request when an attempt has not answered after `delay`;
    /// the first answer wins and the other attempts are dropped. Only for
    /// idempotent methods: a backup is sent while the first request may be
    /// running on a server. Each backup counts as an attempt and draws on
    /// the retry budget. Default none.
    #[must_use]
    pub fn hedge(mut self, delay: HedgeDelay) -> Self {
        self.hedge = Some(delay);
        self
    }

    /// Attempts per call, the first included.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether `status` is worth another attempt, idempotency aside.
    pub fn retries_code(&self, status: &Status) -> bool {
        self.retry_on & bit(status.code()) != 0
    }
}

/// Exponential backoff with jitter: the `n`-th retry waits
/// `min(initial × multiplier^(n-1), max)`, shortened by a random fraction of
/// up to `jitter` so that clients that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Default for Backoff {
    /// 10 ms, doubling, at most 1 s, jitter 0.5 (each wait is between half
    /// and all of the exponential value).
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))
    }
}

impl Backoff {
    /// Start at `initial`, double each retry, never exceed `max`; jitter 0.5.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }

    /// The same wait every time.
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            initial: delay,
            max: delay,
            multiplier: 1.0,
            jitter: 0.0,
        }
    }

    /// Growth per retry. Default 2. At least 1.
    #[must_use]
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = if m.is_finite() { m.max(1.0) } else { 1.0 };
        self
    }

    /// Random fraction (0 to 1) a wait may be shortened by. Default 0.5.
    #[must_use]
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = if j.is_finite() {
            j.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The wait before retry number `n` (1 for the first retry).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.multiplier.powi(n.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let cut = if self.jitter > 0.0 {
            self.jitter * rand::random::<f64>()
        } else {
            0.0
        };
        Duration::from_secs_f64((base * (1.0 - cut)).max(0.0))
    }
}

/// When to send a backup request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// After a fixed delay.
    Fixed(Duration),
    /// After the given percentile (0 to 100) of the method's recent
    /// successful attempt latencies, tracked by the layer (the last 256),
    /// kept within `min..=max`; `initial` until 32 samples are known.
    Percentile {
        /// The percentile, e.g. 95.0.
        percentile: f64,
        /// The delay used until enough latencies are known.
        initial: Duration,
        /// Never hedge sooner than this.
        min: Duration,
        /// Never wait longer than this.
        max: Duration,
    },
}

impl HedgeDelay {
    /// A backup after `delay`.
    pub fn fixed(delay: Duration) -> Self {
        HedgeDelay::Fixed(delay)
    }

    /// A backup once the attempt is slower than `percentile` of recent ones,
    /// starting from `initial`, between 1 ms and 10 × `initial`.
    pub fn percentile(percentile: f64, initial: Duration) -> Self {
        HedgeDelay::Percentile {
            percentile,
            initial,
            min: Duration::from_millis(1),
            max: initial * 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_codes() {
        let p = RetryPolicy::default();
        assert!(p.retries_code(&Status::unavailable("x")));
        assert!(p.retries_code(&Status::resource_exhausted("x")));
        assert!(p.retries_code(&Status::deadline_exceeded("x")));
        assert!(!p.retries_code(&Status::internal("x")));
        assert!(!p.retries_code(&Status::invalid_argument("x")));
        let p = p.retry_on([Code::Internal]);
        assert!(p.retries_code(&Status::internal("x")));
        assert!(!p.retries_code(&Status::unavailable("x")));
    }

    #[test]
    fn backoff_grows_caps_and_jitters_down() {
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100));
        for _ in 0..100 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(5) && d1 <= Duration::from_millis(10));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(20) && d3 <= Duration::from_millis(40));
            assert!(b.delay(30) <= Duration::from_millis(100));
        }
        let f = Backoff::fixed(Duration::from_millis(7));
        assert_eq!(f.delay(5), Duration::from_millis(7));
    }
}
