//! Weft's gRPC example: the `Greeter` service generated from
//! `idl/hello.proto` by `weft-rpc-codegen` (in `build.rs`), a handler for it,
//! and a client that makes both kinds of call.
//!
//! ```text
//! cargo run -p weft-example-grpc-hello --bin grpc-server   # 127.0.0.1:50051, until Ctrl-C
//! cargo run -p weft-example-grpc-hello --bin grpc-client
//! ```
//!
//! Any gRPC client reaches the server too, e.g. grpc-go's or grpcio's, with
//! the same `.proto`.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

mod gen {
    #![allow(missing_docs, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/hello.rs"));
}

pub use gen::hello::hello::*;

use weft::{
    core::{Context, Status},
    protobuf::{GrpcClient, ResponseStream},
};

/// The address the server and client binaries meet at.
pub const ADDRESS: &str = "127.0.0.1:50051";

/// Answers `Greeter` calls.
#[derive(Debug, Clone, Default)]
pub struct Hello;

impl Greeter for Hello {
    async fn say_hello(&self, cx: &mut Context, req: HelloRequest) -> Result<HelloReply, Status> {
        // Metadata the client sent arrives as upstream metainfo.
        let from = cx
            .metainfo
            .upstream
            .get("x-from")
            .cloned()
            .unwrap_or_default();
        Ok(HelloReply {
            text: format!("hello, {} (from {from:?})", req.name).into(),
        })
    }

    async fn greetings(
        &self,
        _cx: &mut Context,
        req: HelloRequest,
    ) -> Result<ResponseStream<HelloReply>, Status> {
        if !(0..=1000).contains(&req.times) {
            return Err(Status::invalid_argument("times must be within 0..=1000"));
        }
        let name = req.name;
        Ok(Box::pin(futures::stream::iter((1..=req.times).map(
            move |i| {
                Ok(HelloReply {
                    text: format!("hello #{i}, {name}").into(),
                })
            },
        ))))
    }
}

/// The client side: one unary call and one stream; returns what it got.
pub async fn talk(addr: &weft::core::Address) -> anyhow::Result<Vec<String>> {
    let client = GreeterClient::new(GrpcClient::new(addr.clone()));
    let mut got = Vec::new();

    let mut cx = Context::default();
    cx.set_timeout(std::time::Duration::from_secs(2));
    cx.metainfo.transient.insert("x-from", "the example");
    let reply = client
        .say_hello(
            cx,
            &HelloRequest {
                name: "weft".into(),
                times: 0,
            },
        )
        .await?;
    got.push(reply.message.text.to_string());

    let mut stream = client
        .greetings(
            Context::default(),
            &HelloRequest {
                name: "stream".into(),
                times: 3,
            },
        )
        .await?
        .message;
    while let Some(reply) = stream.message().await? {
        got.push(reply.text.to_string());
    }
    Ok(got)
}
