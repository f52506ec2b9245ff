//! An echo server that registers in etcd as `Echo` once it listens and
//! deregisters on Ctrl-C before it drains.
//!
//! ```sh
//! cargo run -p weft-example-discovery-etcd --bin server -- [ETCD_URL] [WEIGHT]
//! ```
//!
//! `ETCD_URL` defaults to `http://127.0.0.1:2379`, `WEIGHT` to 100. Start
//! several: each listens on a free port and appears under
//! `/weft/services/Echo/<address>`.

use std::{sync::Arc, time::Duration};

use weft::core::{Instance, ServerBuilder};
use weft_discovery::{EtcdConfig, EtcdRegistry};
use weft_interop::EchoHandler;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let etcd = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_owned());
    let weight: u32 = args.next().map_or(Ok(100), |w| w.parse())?;

    let registry = EtcdRegistry::connect(&[&etcd], EtcdConfig::default()).await?;
    let builder = ServerBuilder::new()
        .register(
            Arc::new(registry),
            "Echo",
            Instance::new("127.0.0.1:0".parse()?).with_weight(weight),
        )
        .deregister_grace(Duration::from_secs(1));
    let server = weft_interop::serve("127.0.0.1:0", builder, EchoHandler::default()).await?;
    println!(
        "serving Echo on {} (weight {weight}), registered in {etcd}; Ctrl-C to stop",
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    println!("deregistering, then draining");
    server.shutdown().await;
    Ok(())
}
