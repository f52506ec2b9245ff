//! What `/status` shows of the governance layers of the stacks a layer
//! observes: balancers, limits, method breakers. Each is a view that holds
//! its layer's state weakly: it answers `None` once the stack is gone, and
//! the list forgets it.

use std::sync::{Mutex, PoisonError};

use faststr::FastStr;

use crate::{balance::EndpointInfo, breaker::BreakerState};

/// A balancer's endpoints; `None` once the balancer is gone.
pub(crate) type EndpointsView = Box<dyn Fn() -> Option<Vec<EndpointInfo>> + Send + Sync>;

/// A view of `T` that answers `None` once what it reads is gone.
pub(crate) type View<T> = Box<dyn Fn() -> Option<T> + Send + Sync>;

/// A limit layer's counts.
pub(crate) type LimitView = View<LimitInfo>;

/// A method breaker layer's breakers.
pub(crate) type BreakersView = View<Vec<MethodBreaker>>;

/// One limit layer as `/status` shows it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) struct LimitInfo {
    /// `concurrency`, `adaptive` or `rate`.
    pub(crate) kind: &'static str,
    /// The calls in flight it allows now (the adaptive one's current value).
    pub(crate) limit: Option<usize>,
    /// Calls in flight through it.
    pub(crate) in_flight: Option<usize>,
    /// A rate limit's calls per second and burst.
    pub(crate) rate: Option<(f64, u32)>,
    /// Calls it shed.
    pub(crate) shed: u64,
}

/// One method's breaker.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) struct MethodBreaker {
    pub(crate) service: FastStr,
    pub(crate) method: FastStr,
    pub(crate) state: BreakerState,
}

/// Views registered with one observe layer.
#[derive(Default)]
pub(crate) struct Views {
    balancers: Mutex<Vec<(FastStr, EndpointsView)>>,
    limits: Mutex<Vec<LimitView>>,
    breakers: Mutex<Vec<BreakersView>>,
}

impl Views {
    pub(crate) fn add_balancer(&self, service: FastStr, view: EndpointsView) {
        lock(&self.balancers).push((service, view));
    }

    pub(crate) fn add_limit(&self, view: LimitView) {
        lock(&self.limits).push(view);
    }

    pub(crate) fn add_breakers(&self, view: BreakersView) {
        lock(&self.breakers).push(view);
    }

    /// Each live balancer's service and endpoints; the dead are dropped.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn balancers(&self) -> Vec<(FastStr, Vec<EndpointInfo>)> {
        let mut out = Vec::new();
        lock(&self.balancers).retain(|(service, view)| match view() {
            Some(eps) => {
                out.push((service.clone(), eps));
                true
            }
            None => false,
        });
        out
    }

    /// Each live limit layer's counts.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn limits(&self) -> Vec<LimitInfo> {
        live(&self.limits)
    }

    /// Every method breaker of the live breaker layers.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn breakers(&self) -> Vec<MethodBreaker> {
        live(&self.breakers).into_iter().flatten().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg_attr(not(feature = "admin"), allow(dead_code))]
fn live<T>(views: &Mutex<Vec<View<T>>>) -> Vec<T> {
    let mut out = Vec::new();
    lock(views).retain(|view| match view() {
        Some(v) => {
            out.push(v);
            true
        }
        None => false,
    });
    out
}
