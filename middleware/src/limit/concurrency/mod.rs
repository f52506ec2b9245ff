//! [`ConcurrencyLimit`]: at most N calls in flight, the rest shed.

mod layer;
mod service;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

pub use self::{layer::ConcurrencyLimitLayer, service::ConcurrencyLimit};

/// Releases a slot when the call ends, however it ends.
pub(crate) struct Slot(pub(crate) Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Take a slot if fewer than `max` are taken.
pub(crate) fn try_take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(count.clone()))
}
