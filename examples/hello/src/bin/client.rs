//! Calls the Hello server on 127.0.0.1:9090.

use weft_example_hello::{talk, ADDRESS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    talk(&ADDRESS.parse()?).await?;
    Ok(())
}
