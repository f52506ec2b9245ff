//! gRPC interop for Weft: a `grpc.testing.TestService` server and an
//! interop client implementing the cases of gRPC's
//! `doc/interop-test-descriptions.md`, both with the official flags, run
//! against grpc-go's, grpcio's and tonic's in `tests/`.
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

#[allow(
    clippy::all,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused
)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/testing.rs"));
}

pub mod cases;
pub mod peers;
pub mod server;
pub mod service;
pub mod wire;

pub use generated::testing::grpc::testing as pb;
