//! The example's server and client over loopback, as the binaries run them.

use weft::core::ServerBuilder;
use weft_example_grpc_hello::{talk, GreeterServer, Hello};

#[tokio::test]
async fn the_client_gets_both_answers() {
    let server = GreeterServer::new(Hello)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let got = talk(server.local_addr()).await.unwrap();
    assert_eq!(
        got,
        [
            "hello, weft (from \"the example\")",
            "hello #1, stream",
            "hello #2, stream",
            "hello #3, stream",
        ]
    );
    server.shutdown().await;
}
