//! The Greeter gRPC server on 127.0.0.1:50051, until Ctrl-C.

use weft::core::ServerBuilder;
use weft_example_grpc_hello::{GreeterServer, Hello, ADDRESS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = GreeterServer::new(Hello)
        .serve(ServerBuilder::new(), &ADDRESS.parse()?)
        .await?;
    println!(
        "grpc-server: listening on {}; Ctrl-C stops it",
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    println!("grpc-server: shut down gracefully");
    Ok(())
}
