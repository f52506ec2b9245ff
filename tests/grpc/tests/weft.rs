//! Weft's interop client against Weft's interop server, every case, over a
//! real socket; the same server also answers Thrift on the port.

use weft::{core::ServerBuilder, protobuf::GrpcServer};
use weft_grpc_tests::{
    cases::{run, Clients, CASES},
    server::Interop,
    service::TestServiceServer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interop_case_weft_to_weft() {
    let server = TestServiceServer::new(Interop).register(GrpcServer::new());
    let handle = server
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let clients = Clients::new(handle.local_addr().clone());
    let mut failed = Vec::new();
    for case in CASES {
        if let Err(e) = run(&clients, case).await {
            failed.push(format!("{case}: {e:#}"));
        }
    }
    handle.shutdown().await;
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
}

/// One listener, one port: Thrift (TTHeader, framed) and gRPC clients are
/// told apart by their first bytes and both served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrift_and_grpc_share_one_port() {
    use weft::thrift::{Protocol, Transport};
    use weft_example_hello::{Greeter, HelloClient, HelloServer};

    let grpc = TestServiceServer::new(Interop).register(GrpcServer::new());
    let handle = HelloServer::new(Greeter)
        .serve(
            ServerBuilder::new().protocol(grpc),
            &"127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
    let addr = handle.local_addr().clone();
    for transport in [Transport::TTHeader, Transport::Framed, Transport::Buffered] {
        let thrift = HelloClient::new(
            weft::core::ClientBuilder::new(addr.clone()),
            transport,
            Protocol::Binary,
        );
        let g = thrift
            .with_context(&weft::core::Context::new("Hello", "greet"))
            .greet("one port".into(), 2)
            .await
            .map(|(v, _)| v)
            .unwrap();
        assert_eq!(g.text.as_deref(), Some("hello, one port"));
    }
    let clients = Clients::new(addr);
    for case in ["empty_unary", "large_unary", "ping_pong", "custom_metadata"] {
        run(&clients, case)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
    }
    handle.shutdown().await;
}
