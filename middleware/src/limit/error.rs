//! The cause attached to the [`Status`](weft_core::Status) a limit returns
//! when it sheds a call.

use std::fmt;

/// A limit shed the call before it reached the service. Attached as the
/// source of the `ResourceExhausted` status that [`ConcurrencyLimit`],
/// [`RateLimit`] and [`AdaptiveLimit`] return, so a caller can tell a local
/// shed from a peer's `ResourceExhausted`:
/// `status.source().and_then(|e| e.downcast_ref::<Overloaded>())`.
///
/// [`ConcurrencyLimit`]: super::ConcurrencyLimit
/// [`RateLimit`]: super::RateLimit
/// [`AdaptiveLimit`]: super::AdaptiveLimit
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    limit: &'static str,
}

impl Overloaded {
    pub(super) fn new(limit: &'static str) -> Self {
        Overloaded { limit }
    }

    /// Which limit shed the call: `"concurrency limit"`, `"rate limit"` or
    /// `"adaptive limit"`.
    pub fn limit(&self) -> &'static str {
        self.limit
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: request shed", self.limit)
    }
}

impl std::error::Error for Overloaded {}
