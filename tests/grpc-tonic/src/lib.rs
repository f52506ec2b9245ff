//! tonic's side of the gRPC interop: a `grpc.testing.TestService` server
//! and an interop client written with tonic 0.14, run against Weft's
//! server and client in `tests/`.
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("grpc.testing");
}

pub mod client;
pub mod server;
