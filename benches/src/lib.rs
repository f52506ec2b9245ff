//! Weft's benchmarks: shared support for the end-to-end load generator
//! (`src/main.rs`) and the criterion micro-benchmarks (`benches/`).
//!
//! - [`service`]: the `Bench` echo service (`idl/bench.thrift`) on Weft,
//!   with entry messages over pilota-generated types;
//! - [`volo_side`]: the same service on `volo-thrift` 0.12;
//! - [`raw`]: the floor, a tokio TCP echo of 4-byte length-prefixed frames;
//! - [`types`]: the pilota-generated types, and [`apache`] the ones Apache
//!   Thrift's compiler generates, for the codec comparison;
//! - [`alloc`] and [`cpu`]: what a process spends per call.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use weft_benches::service::{serve, BenchClient, BenchHandler};
//! use weft::core::ConnectionMode;
//!
//! let server = serve("127.0.0.1:0", BenchHandler::default()).await?;
//! let client = BenchClient::new(server.local_addr(), ConnectionMode::Pooled, 16);
//! let reply = client.echo("hello".into()).await?;
//! assert_eq!(reply, "hello");
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod alloc;
pub mod apache;
pub mod cpu;
pub mod grpc;
pub mod raw;
pub mod service;
pub mod types;
pub mod volo_side;
