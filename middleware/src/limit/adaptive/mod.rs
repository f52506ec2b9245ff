//! [`AdaptiveLimit`]: a concurrency limit that follows the gradient of
//! latency and backs off on overload.

mod future;
mod layer;
mod service;
#[cfg(test)]
mod tests;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::Instant;
use weft_core::{Code, Status};

pub use self::{future::AdaptiveFuture, layer::AdaptiveLimitLayer, service::AdaptiveLimit};

/// What the limit is multiplied by after an update window that held an
/// overload signal (a timeout, a shed, an abandoned call): the multiplicative
/// decrease of AIMD, and the `backoffRatio` default of Netflix's
/// concurrency-limits. One cut per window, not per signal, so that a burst of
/// timeouts that all began together cuts the limit once rather than to the
/// floor at a stroke.
pub const OVERLOAD_BACKOFF: f64 = 0.9;

/// Tuning of an [`AdaptiveLimit`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// The limit it starts from. Default 20.
    pub initial: usize,
    /// It never goes below this. Default 1.
    pub min: usize,
    /// Nor above this. Default 1000.
    pub max: usize,
    /// Weight of a new estimate in the limit (0..=1). Default 0.2.
    pub smoothing: f64,
    /// Outcomes per update: the limit changes once per this many calls
    /// (their answers' latency averaged, or cut if one signalled overload).
    /// Default 10.
    pub samples_per_update: u32,
    /// How long the no-load latency estimate is trusted before it is
    /// re-learned, so a permanently slower service is not starved. Default 30 s.
    pub probe_interval: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            initial: 20,
            min: 1,
            max: 1000,
            smoothing: 0.2,
            samples_per_update: 10,
            probe_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
pub(super) struct State {
    limit: f64,
    no_load_rtt: Option<Duration>,
    no_load_since: Instant,
    // Latency of the window's answers, and how many there were.
    sum: Duration,
    answers: u32,
    // Outcomes in the window, answers and overload signals together.
    count: u32,
    overloaded: bool,
}

/// How a call under the limit ended, as the limit learns from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// An answer: its latency counts.
    Answered(Duration),
    /// Timed out, shed by an inner layer, or abandoned before it ended.
    Overloaded,
}

/// Which errors say the service is past what it can take: it ran out of
/// time (`DeadlineExceeded`) or an inner layer shed the call
/// (`ResourceExhausted`). Other errors are ignored, as before: they are often
/// refused before any work (a bad argument, a missing method), so their
/// latency says nothing of load.
pub(super) fn is_overload(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::DeadlineExceeded | Code::ResourceExhausted
    )
}

#[derive(Debug)]
pub(super) struct Shared {
    config: AdaptiveConfig,
    pub(super) limit: AtomicUsize,
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Calls refused.
    pub(super) shed: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
}

impl Shared {
    pub(super) fn new(config: AdaptiveConfig) -> Shared {
        Shared {
            limit: AtomicUsize::new(config.initial),
            in_flight: Arc::default(),
            shed: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(State {
                limit: config.initial as f64,
                no_load_rtt: None,
                no_load_since: Instant::now(),
                sum: Duration::ZERO,
                answers: 0,
                count: 0,
                overloaded: false,
            }),
            config,
        }
    }

    /// Learn from one outcome. Outcomes are taken `samples_per_update` at a
    /// time; at the end of each window the limit is updated once:
    ///
    /// - if the window held an overload signal, limit × [`OVERLOAD_BACKOFF`]
    ///   (Netflix's windowed limits do the same with a dropped sample): a
    ///   service that times out or sheds is past its limit whatever the
    ///   latency of its other answers says;
    /// - otherwise the gradient update, limit × (no-load rtt / rtt) +
    ///   √limit of headroom, smoothed.
    ///
    /// Only answers are latency samples: the time a call took to time out
    /// or be abandoned is the caller's budget, not the service's latency.
    pub(super) fn observe(&self, outcome: Outcome) {
        let c = &self.config;
        let mut s = self.state.lock();
        match outcome {
            Outcome::Answered(rtt) => {
                let now = Instant::now();
                if now.saturating_duration_since(s.no_load_since) > c.probe_interval {
                    s.no_load_rtt = None;
                }
                if s.no_load_rtt.is_none_or(|m| rtt < m) {
                    s.no_load_rtt = Some(rtt);
                    s.no_load_since = now;
                }
                s.sum += rtt;
                s.answers += 1;
            }
            Outcome::Overloaded => s.overloaded = true,
        }
        s.count += 1;
        if s.count < c.samples_per_update {
            return;
        }
        let target = if s.overloaded || s.answers == 0 {
            s.limit * OVERLOAD_BACKOFF
        } else {
            let avg = s.sum / s.answers;
            let no_load = s.no_load_rtt.unwrap_or(avg).as_secs_f64().max(1e-6);
            // Never more than double, never below half, per update: latency
            // noise must not swing the limit wildly.
            let gradient = (no_load / avg.as_secs_f64().max(1e-6)).clamp(0.5, 1.0);
            let target = s.limit * gradient + s.limit.sqrt();
            s.limit * (1.0 - c.smoothing) + target * c.smoothing
        };
        s.sum = Duration::ZERO;
        s.answers = 0;
        s.count = 0;
        s.overloaded = false;
        let next = target.clamp(c.min as f64, c.max as f64);
        s.limit = next;
        let rounded = next.round() as usize;
        if self.limit.swap(rounded, Ordering::Relaxed) != rounded {
            crate::observe::governance::adaptive_limit(rounded);
        }
    }
}
