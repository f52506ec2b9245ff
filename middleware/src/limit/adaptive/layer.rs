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
