//! Weft in one minute: the generated Hello server and client talking over
//! loopback in one process, printing what they do.

use weft::core::ServerBuilder;
use weft_example_hello::{talk, Greeter, HelloServer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One port serves TTHeader, THeader, framed and buffered Thrift, binary or compact.
    let server = HelloServer::new(Greeter)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse()?)
        .await?;
    println!("server: listening on {}", server.local_addr());
    talk(server.local_addr()).await?;
    // Give the one-way call a moment to be handled before shutting down.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    server.shutdown().await;
    println!("server: shut down gracefully");
    Ok(())
}
