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
//!
//! Laid out as tower lays out its middleware: the state machine in
//! `state.rs`, the per-method service in `service.rs`, its `Layer` in
//! `layer.rs`, its future in `future.rs`, the refusal's source in
//! `error.rs`; the configuration here.

mod error;
mod future;
mod layer;
mod service;
mod state;
#[cfg(test)]
mod tests;

use std::time::Duration;

use weft_core::{Code, Status};

pub use self::{
    error::BreakerOpen,
    future::ResponseFuture,
    layer::CircuitBreakerLayer,
    service::CircuitBreaker,
    state::{Breaker, Permit},
};

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
