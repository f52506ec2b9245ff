//! The [`ConcurrencyLimitLayer`].

use std::sync::{atomic::AtomicUsize, Arc};

use tower::Layer;

use super::ConcurrencyLimit;

/// Applies a [`ConcurrencyLimit`]; every service it wraps shares one count.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    max: usize,
    in_flight: Arc<AtomicUsize>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` calls in flight.
    pub fn new(max: usize) -> Self {
        ConcurrencyLimitLayer {
            max,
            in_flight: Arc::default(),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            max: self.max,
            in_flight: self.in_flight.clone(),
        }
    }
}
