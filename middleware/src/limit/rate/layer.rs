//! The [`RateLimitLayer`].

use std::{sync::Arc, time::Duration};

use tower::Layer;

use super::{Bucket, RateLimit};

/// Applies a [`RateLimit`]; every service it wraps shares one bucket.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Bucket>,
}

impl RateLimitLayer {
    /// `rate` calls per `per`, `burst` at once.
    pub fn new(calls: u32, per: Duration, burst: u32) -> Self {
        RateLimitLayer {
            bucket: Arc::new(Bucket::new(f64::from(calls) / per.as_secs_f64(), burst)),
        }
    }

    /// A view for `/status` that does not keep the limit alive.
    pub(crate) fn view(&self) -> crate::observe::views::LimitView {
        Bucket::view(&self.bucket)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}
