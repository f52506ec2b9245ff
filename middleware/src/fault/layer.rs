//! [`FaultLayer`].

use std::sync::Arc;

use tower::Layer;

use super::{Fault, FaultConfig, PerMethod};

/// Applies [`Fault`].
#[derive(Debug, Clone)]
pub struct FaultLayer {
    faults: Arc<PerMethod<FaultConfig>>,
}

impl FaultLayer {
    /// Inject `faults`: one [`FaultConfig`] for every method, or a
    /// [`PerMethod<FaultConfig>`].
    pub fn new(faults: impl Into<PerMethod<FaultConfig>>) -> Self {
        FaultLayer {
            faults: Arc::new(faults.into()),
        }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Fault<S> {
        Fault {
            inner,
            faults: self.faults.clone(),
        }
    }
}
