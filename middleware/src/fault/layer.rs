//! [`FaultLayer`].

use std::sync::Arc;

use tower::Layer;

use super::{Fault, FaultInjection, PerMethod};

/// Applies [`FaultInjection`].
#[derive(Debug, Clone)]
pub struct FaultLayer {
    faults: Arc<PerMethod<Fault>>,
}

impl FaultLayer {
    /// Inject `faults`: one [`Fault`] for every method, or a
    /// [`PerMethod<Fault>`].
    pub fn new(faults: impl Into<PerMethod<Fault>>) -> Self {
        FaultLayer {
            faults: Arc::new(faults.into()),
        }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultInjection<S>;

    fn layer(&self, inner: S) -> FaultInjection<S> {
        FaultInjection {
            inner,
            faults: self.faults.clone(),
        }
    }
}
