//! Weft in one minute: an echo server and a client talking over loopback.
//!
//! ```text
//! cargo run -p weft-interop --example quickstart
//! ```

use weft::core::{ConnectionMode, Context, ServerBuilder};
use weft::thrift::{Protocol, Transport};
use weft_interop::{serve, EchoClient, EchoHandler, Payload};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One port serves TTHeader, THeader, framed and buffered Thrift, binary or compact.
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default()).await?;
    println!("server: listening on {}", server.local_addr());

    let client = EchoClient::new(
        server.local_addr(),
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );

    let sent = Payload {
        text: Some("hello, weft".into()),
        count: Some(42),
        ..Default::default()
    };
    let got = client.echo(Context::default(), sent.clone()).await?;
    println!("client: echo({:?}) -> {:?}", sent.text, got.text);

    println!(
        "client: add(40, 2) -> {}",
        client.add(Context::default(), 40, 2).await?
    );

    match client.fail(Context::default(), 7, "no such thing").await? {
        Ok(_) => println!("client: fail -> unexpectedly succeeded"),
        Err(e) => println!("client: fail -> declared exception {e:?}"),
    }

    let mut cx = Context::default();
    cx.metainfo.persistent.insert("tenant", "blue");
    let (value, back) = client.metainfo(cx, "tenant").await?;
    println!(
        "client: metainfo(tenant) -> {value:?}, backward {:?}",
        back.metainfo.backward.get("echo-tenant")
    );

    server.shutdown().await;
    println!("server: shut down gracefully");
    Ok(())
}
