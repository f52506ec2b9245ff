//! Calls the Greeter server at 127.0.0.1:50051 and prints the answers.

use weft_example_grpc_hello::{talk, ADDRESS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for line in talk(&ADDRESS.parse()?).await? {
        println!("grpc-client: {line}");
    }
    Ok(())
}
