//! [`CircuitBreaker`]: one [`Breaker`] per method in front of a service.

use std::{
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use faststr::FastStr;
use tower::Service;
use weft_core::{Request, Status};

use super::{Breaker, BreakerConfig, ResponseFuture};
use crate::table::MethodMap;

/// Keeps one [`Breaker`] per service and method in front of `S`.
///
/// The breakers live in a bounded, write-once table found again on every
/// call without a lock: past [`DEFAULT_MAX_METHODS`](crate::observe::DEFAULT_MAX_METHODS)
/// distinct methods, the rest share one breaker (labelled
/// [`OTHER_METHOD`](crate::observe::OTHER_METHOD)), so made-up method
/// names cannot grow it.
#[derive(Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    config: Arc<BreakerConfig>,
    pub(super) breakers: Arc<MethodMap<Arc<Breaker>>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("breakers", &self.breakers)
            .finish()
    }
}

impl<S> CircuitBreaker<S> {
    /// Wrap `inner` with per-method breakers configured by `config`.
    pub fn new(inner: S, config: BreakerConfig) -> Self {
        CircuitBreaker {
            inner,
            config: Arc::new(config),
            breakers: Arc::new(MethodMap::new(crate::observe::DEFAULT_MAX_METHODS)),
        }
    }

    /// A view of every method's breaker for `/status` that does not keep
    /// them alive.
    pub(crate) fn view(&self) -> crate::observe::views::BreakersView {
        let weak = Arc::downgrade(&self.breakers);
        Box::new(move || {
            let map = weak.upgrade()?;
            Some(
                map.iter()
                    .map(|(key, b)| {
                        let (service, method) = match key {
                            Some((s, m)) => (s.clone(), m.clone()),
                            None => (
                                FastStr::empty(),
                                FastStr::from_static_str(crate::observe::OTHER_METHOD),
                            ),
                        };
                        crate::observe::views::MethodBreaker {
                            service,
                            method,
                            state: b.state(),
                        }
                    })
                    .collect(),
            )
        })
    }

    /// The breaker of `service`'s `method`, created closed on first use.
    pub fn breaker(&self, service: &str, method: &str) -> Arc<Breaker> {
        self.lookup(&FastStr::new(service), &FastStr::new(method))
            .clone()
    }

    fn lookup(&self, service: &FastStr, method: &FastStr) -> &Arc<Breaker> {
        self.breakers.get_or_insert_with(service, method, |key| {
            // Named by the method alone, as its metrics always were.
            let name = match key {
                Some((_, m)) => m.clone(),
                None => FastStr::from_static_str(crate::observe::OTHER_METHOD),
            };
            Arc::new(Breaker::new((*self.config).clone()).labelled("method", name))
        })
    }
}

impl<S, T, R> Service<Request<T>> for CircuitBreaker<S>
where
    S: Service<Request<T>, Response = R, Error = Status>,
    T: Send + 'static,
{
    type Response = R;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<T>) -> Self::Future {
        let breaker = self.lookup(&req.cx.service, &req.cx.method).clone();
        match breaker.try_acquire() {
            Ok(permit) => ResponseFuture::new(self.inner.call(req), breaker, permit),
            // Handed back: a retry may send it to the next method's try
            // without having kept a copy.
            Err(e) => ResponseFuture::refused(e.with_unsent(req)),
        }
    }
}
