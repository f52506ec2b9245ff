//! The cause attached to the [`Status`](weft_core::Status) of a call an open
//! breaker refused.

use std::fmt;

/// The breaker was open (or half-open with every probe place taken), so the
/// call was never sent. Attached as the source of the `Unavailable` status
/// that [`Breaker::try_acquire`](super::Breaker::try_acquire) and
/// [`CircuitBreaker`](super::CircuitBreaker) return, so a caller can tell it
/// from an `Unavailable` of the peer or the connection:
/// `status.source().and_then(|e| e.downcast_ref::<BreakerOpen>())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen(pub(super) ());

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit breaker is open")
    }
}

impl std::error::Error for BreakerOpen {}
