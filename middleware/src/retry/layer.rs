//! [`RetryLayer`]: configures and applies [`Retry`].

use std::sync::Arc;

use tower::Layer;
use weft_core::{faststr::FastStr, Context};

use super::{Idempotency, Latencies, PerMethod, Retry, RetryBudget, RetryPolicy, Shared};

/// Applies [`Retry`]. Clones of the layer, and every service it wraps, share
/// one [`RetryBudget`] and one latency tracker.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new(RetryPolicy::default())
    }
}

impl RetryLayer {
    /// Retry with `policy`, one for every method or a
    /// [`PerMethod<RetryPolicy>`]. No method is idempotent until marked with
    /// [`idempotent`](Self::idempotent) or [`idempotent_if`](Self::idempotent_if),
    /// and the budget is [`RetryBudget::default`] (10 %).
    pub fn new(policy: impl Into<PerMethod<RetryPolicy>>) -> Self {
        RetryLayer {
            shared: Arc::new(Shared {
                policies: policy.into(),
                idempotency: Idempotency::Methods(PerMethod::new(false)),
                budget: RetryBudget::default(),
                latencies: Arc::new(Latencies::default()),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Mark these methods idempotent: their calls may be retried, and
    /// hedged, even when the request may have reached the server.
    #[must_use]
    pub fn idempotent<I, M>(self, methods: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<FastStr>,
    {
        let mut map = PerMethod::new(false);
        for m in methods {
            map.set(m, true);
        }
        self.idempotency(map)
    }

    /// Which methods are idempotent, with a default for the rest (`true` for
    /// a service whose every method is safe to repeat).
    #[must_use]
    pub fn idempotency(self, methods: PerMethod<bool>) -> Self {
        self.edit(|s| s.idempotency = Idempotency::Methods(methods))
    }

    /// Decide idempotency per call, from its context (service, method,
    /// metainfo).
    #[must_use]
    pub fn idempotent_if<F>(self, predicate: F) -> Self
    where
        F: Fn(&Context) -> bool + Send + Sync + 'static,
    {
        self.edit(|s| s.idempotency = Idempotency::Predicate(Arc::new(predicate)))
    }

    /// Share `budget` (default [`RetryBudget::default`], one per layer).
    #[must_use]
    pub fn budget(self, budget: RetryBudget) -> Self {
        self.edit(|s| s.budget = budget)
    }

    /// The budget this layer draws on.
    pub fn budget_ref(&self) -> &RetryBudget {
        &self.shared.budget
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            shared: self.shared.clone(),
        }
    }
}
