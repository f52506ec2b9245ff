//! Load shedding: refuse work beyond what a service can take, at once and
//! with `ResourceExhausted`, so that admitted calls keep their latency.
//!
//! - [`ConcurrencyLimit`]: at most N calls in flight (server or client side).
//! - [`RateLimit`]: a token bucket of calls per second with a burst.
//! - [`AdaptiveLimit`]: a concurrency limit that finds itself, following the
//!   gradient of latency (as Netflix's concurrency-limits `Gradient2` and
//!   brpc's auto limiter do): when latency rises above the no-load latency
//!   the limit shrinks, when it stays at it the limit grows; timeouts, sheds
//!   by inner layers and abandoned calls cut it by [`OVERLOAD_BACKOFF`].
//!
//! Each limit is a folder as tower lays out `tower/src/limit/concurrency/`:
//! `mod.rs` (its docs and state), `service.rs`, `layer.rs`, and for the
//! adaptive limit its own `future.rs`. Concurrency and rate limits share
//! [`ResponseFuture`] (`future.rs`); every shed carries [`Overloaded`]
//! (`error.rs`).

mod adaptive;
mod concurrency;
mod error;
mod future;
mod rate;

pub use adaptive::{
    AdaptiveConfig, AdaptiveFuture, AdaptiveLimit, AdaptiveLimitLayer, OVERLOAD_BACKOFF,
};
pub use concurrency::{ConcurrencyLimit, ConcurrencyLimitLayer};
pub use error::Overloaded;
pub use future::ResponseFuture;
pub use rate::{RateLimit, RateLimitLayer};

use weft_core::Status;

/// The status of a shed call: never handled, so safe to retry elsewhere;
/// [`Overloaded`] as its source. Limits are server layers (DESIGN's server
/// stack), so this is the server's own refusal and crosses the wire as
/// "not processed".
pub(crate) fn shed(what: &'static str) -> Status {
    crate::observe::governance::shed(what);
    let cause = Overloaded::new(what);
    Status::resource_exhausted(cause.to_string())
        .with_source(cause)
        .into_refusal()
}
