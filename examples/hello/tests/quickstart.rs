//! The quickstart's calls, checked: generated server and client over a real
//! socket, a declared exception included.

use weft::core::ServerBuilder;
use weft_example_hello::{talk, Greeter, HelloServer};

#[tokio::test]
async fn the_quickstart_conversation_succeeds() {
    let server = HelloServer::new(Greeter)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    talk(server.local_addr()).await.unwrap();
    server.shutdown().await;
}
