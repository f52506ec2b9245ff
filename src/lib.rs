//! Weft: a lightweight, embeddable RPC framework with the governance of a
//! service mesh built in.
//!
//! This facade re-exports Weft's crates behind features, so a service needs
//! one dependency:
//!
//! - [`core`] (always): the contract — [`core::Context`], [`core::Status`],
//!   [`core::Request`] / [`core::Response`], `tower::Service` clients and
//!   servers, transports and limits.
//! - [`thrift`] (feature `thrift`, on by default): Apache Thrift protocols and
//!   transports, including Kitex's TTHeader, and their codecs.
//! - [`middleware`] (feature `middleware`, on by default): governance as tower
//!   layers — timeouts and deadlines, retries with a budget and backup
//!   requests, load balancing, circuit breakers, limits, fault injection,
//!   and observability (metrics, spans with W3C trace propagation, access
//!   log); feature `admin` adds the HTTP admin endpoint (`/metrics`,
//!   `/healthz`, `/readyz`, `/status`), off by default.
//! - `discovery` (feature `discovery`, off by default): DNS and etcd
//!   discovery and registration (the static list is in [`core`]).
//!
//! ```
//! use weft::core::{Code, Context, Status};
//!
//! let mut cx = Context::new("echo", "echo");
//! cx.metainfo.persistent.insert("tenant", "blue");
//! assert_eq!(cx.metainfo.for_next_hop().persistent.get("tenant").unwrap(), "blue");
//! assert_eq!(Status::unimplemented("no such method").code(), Code::Unimplemented);
//! ```
#![forbid(unsafe_code)]

pub use weft_core as core;

#[cfg(feature = "thrift")]
pub use weft_thrift as thrift;

/// Protobuf messages and gRPC over HTTP/2 ([`weft_protobuf`]).
#[cfg(feature = "grpc")]
pub use weft_protobuf as protobuf;

#[cfg(feature = "middleware")]
pub use weft_middleware as middleware;

/// One builder for a Thrift client with governance built in.
#[cfg(all(feature = "thrift", feature = "middleware"))]
pub mod client;

#[cfg(feature = "discovery")]
pub use weft_discovery as discovery;
