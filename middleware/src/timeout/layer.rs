//! [`TimeoutLayer`] and [`DeadlineLayer`].

use std::{sync::Arc, time::Duration};

use tower::Layer;

use super::{Deadline, PerMethod, Timeout};

/// Applies [`Timeout`]: a client-side timeout per method (total when placed
/// outside the retry layer, per attempt when placed inside it).
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeouts: Arc<PerMethod<Option<Duration>>>,
}

impl TimeoutLayer {
    /// Time out every call after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer::per_method(PerMethod::new(Some(timeout)))
    }

    /// A timeout per method; `None` leaves a method's calls alone.
    pub fn per_method(timeouts: PerMethod<Option<Duration>>) -> Self {
        TimeoutLayer {
            timeouts: Arc::new(timeouts),
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::with_shared(inner, self.timeouts.clone())
    }
}

/// Applies [`Deadline`]: the server-side deadline check.
#[derive(Debug, Clone, Default)]
pub struct DeadlineLayer {
    defaults: Arc<PerMethod<Option<Duration>>>,
}

impl DeadlineLayer {
    /// Enforce the deadline each request carries; requests without one run
    /// unbounded.
    pub fn new() -> Self {
        DeadlineLayer::default()
    }

    /// Also give requests that carry no deadline one `timeout` from arrival,
    /// per method.
    pub fn default_timeouts(timeouts: PerMethod<Option<Duration>>) -> Self {
        DeadlineLayer {
            defaults: Arc::new(timeouts),
        }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::with_shared(inner, self.defaults.clone())
    }
}
