//! The cause attached to the [`Status`](weft_core::Status) of a call the
//! balancer had nowhere to send.

use std::fmt;

/// No instance could take the call (none discovered, all of weight 0 or
/// behind open breakers), so it was never sent. Attached as the source of
/// the `Unavailable` status that [`Balance`](super::Balance) returns:
/// `status.source().and_then(|e| e.downcast_ref::<NoInstance>())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoInstance(pub(super) ());

impl fmt::Display for NoInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no available instance")
    }
}

impl std::error::Error for NoInstance {}
