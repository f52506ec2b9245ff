//! Weft's governance as `tower` layers: the features of a service mesh in
//! the client and server themselves.
//!
//! Client stack, outside in (DESIGN.md): tracing and metrics → total timeout
//! → retry → method circuit breaker → load balancer ([`balance::Balance`],
//! with a breaker per instance) → per-attempt timeout → connection. Server
//! stack: tracing and metrics → limits ([`limit`]) → deadline check →
//! handler. Every layer is a plain `tower::Layer`, so third-party layers mix
//! in freely.
//!
//! Timeouts and deadlines are in [`timeout`] ([`Timeout`] on the client,
//! [`Deadline`] on the server), retries, the retry budget and backup
//! requests in [`retry`], fault injection for tests and drills in [`fault`];
//! their settings are per method through [`PerMethod`]. Metrics, spans with
//! W3C trace propagation and the access log are in [`observe`], with an
//! HTTP admin endpoint behind the `admin` feature.
//!
//! ```
//! use std::time::Duration;
//! use weft_middleware::breaker::{Breaker, BreakerConfig, BreakerState};
//!
//! let breaker = Breaker::new(BreakerConfig { min_samples: 2, ..BreakerConfig::default() });
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! # rt.block_on(async {
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire().unwrap();
//!     breaker.record(permit, false);
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! assert!(breaker.try_acquire().is_err()); // fails fast, never sent
//! # });
//! ```
#![forbid(unsafe_code)]

pub mod balance;
pub mod breaker;
pub mod fault;
pub mod limit;
pub mod observe;
pub mod retry;
pub mod stack;
mod table;
pub mod timeout;

pub use fault::{Fault, FaultConfig, FaultLayer};
pub use observe::{AccessLog, Observe, ObserveLayer, System};
pub use retry::{Backoff, HedgeDelay, Retry, RetryBudget, RetryLayer, RetryPolicy};
pub use stack::{
    BoxStack, ClientService, ClientStack, Endpoint, MakeEndpoint, ServerService, ServerStack,
};
pub use timeout::{Deadline, DeadlineLayer, PerMethod, Timeout, TimeoutLayer};
