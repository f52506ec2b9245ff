//! The [`AdaptiveLimitLayer`].

use std::sync::{atomic::Ordering, Arc};

use tower::Layer;

use super::{AdaptiveConfig, AdaptiveLimit, Shared};

/// Applies one [`AdaptiveLimit`] shared by every service it wraps.
#[derive(Debug, Clone)]
pub struct AdaptiveLimitLayer {
    shared: Arc<Shared>,
}

impl AdaptiveLimitLayer {
    /// An adaptive limit configured by `config`.
    pub fn new(config: AdaptiveConfig) -> Self {
        AdaptiveLimitLayer {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }

    /// A view for `/status` that does not keep the limit alive.
    pub(crate) fn view(&self) -> crate::observe::views::LimitView {
        let weak = Arc::downgrade(&self.shared);
        Box::new(move || {
            let s = weak.upgrade()?;
            Some(crate::observe::views::LimitInfo {
                kind: "adaptive",
                limit: Some(s.limit.load(Ordering::Relaxed)),
                in_flight: Some(s.in_flight.load(Ordering::Relaxed)),
                rate: None,
                shed: s.shed.load(Ordering::Relaxed),
            })
        })
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}
