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
