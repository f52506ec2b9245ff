//! The [`ConcurrencyLimitLayer`].

use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Arc,
};

use tower::Layer;

use super::ConcurrencyLimit;

/// Applies a [`ConcurrencyLimit`]; every service it wraps shares one count.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    max: usize,
    in_flight: Arc<AtomicUsize>,
    shed: Arc<AtomicU64>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` calls in flight.
    pub fn new(max: usize) -> Self {
        ConcurrencyLimitLayer {
            max,
            in_flight: Arc::default(),
            shed: Arc::default(),
        }
    }

    /// A view for `/status` that does not keep the limit alive.
    pub(crate) fn view(&self) -> crate::observe::views::LimitView {
        let max = self.max;
        let in_flight = Arc::downgrade(&self.in_flight);
        let shed = Arc::downgrade(&self.shed);
        Box::new(move || {
            Some(crate::observe::views::LimitInfo {
                kind: "concurrency",
                limit: Some(max),
                in_flight: Some(in_flight.upgrade()?.load(Ordering::Relaxed)),
                rate: None,
                shed: shed.upgrade()?.load(Ordering::Relaxed),
            })
        })
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            max: self.max,
            in_flight: self.in_flight.clone(),
            shed: self.shed.clone(),
        }
    }
}
