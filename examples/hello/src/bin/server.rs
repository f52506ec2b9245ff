//! The Hello server on 127.0.0.1:9090, until Ctrl-C.

use weft::core::ServerBuilder;
use weft_example_hello::{Greeter, HelloServer, ADDRESS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = HelloServer::new(Greeter)
        .serve(ServerBuilder::new(), &ADDRESS.parse()?)
        .await?;
    println!(
        "server: listening on {}; Ctrl-C stops it",
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    println!("server: shut down gracefully");
    Ok(())
}
