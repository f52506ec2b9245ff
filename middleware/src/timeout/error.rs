//! The cause attached to the [`Status`](weft_core::Status) a timeout or
//! deadline layer returns.

use std::fmt;

/// The timeout or deadline elapsed. Attached as the source of the
/// `DeadlineExceeded` status that [`Timeout`](super::Timeout) and
/// [`Deadline`](super::Deadline) return, so a caller can tell a layer's
/// timeout from one reported by the peer:
/// `status.source().and_then(|e| e.downcast_ref::<Elapsed>())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub(super) ());

impl Elapsed {
    /// A new `Elapsed`.
    pub(super) fn new() -> Self {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}
