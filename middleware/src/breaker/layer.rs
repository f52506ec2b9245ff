use tower::Layer;

use super::{BreakerConfig, CircuitBreaker};

/// Puts a per-method [`CircuitBreaker`] in front of a service.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakerLayer {
    config: BreakerConfig,
}

impl CircuitBreakerLayer {
    /// Breakers configured by `config`.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreakerLayer { config }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.config.clone())
    }
}
