//! A client that finds `Echo` servers in etcd and spreads calls over them,
//! printing which instance answered and every change to the set.
//!
//! ```sh
//! cargo run -p weft-example-discovery-etcd --bin client -- [ETCD_URL] [CALLS]
//! ```
//!
//! `ETCD_URL` defaults to `http://127.0.0.1:2379`, `CALLS` to 50 (one every
//! 200 ms). Start or stop servers while it runs.

use std::time::Duration;

use tower::{Layer, ServiceExt};
use weft::core::{ConnectionMode, Context, Instance, Request};
use weft::middleware::{
    balance::{Balance, BalanceConfig},
    RetryLayer, RetryPolicy,
};
use weft::thrift::{Protocol, Transport};
use weft_discovery::{EtcdConfig, EtcdDiscover};
use weft_interop::{EchoAddArgsSend, EchoClient, EchoRequest, EchoResponse};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let etcd = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_owned());
    let calls: u64 = args.next().map_or(Ok(50), |n| n.parse())?;

    let discover = EtcdDiscover::connect(&[&etcd], EtcdConfig::default()).await?;
    let mut instances = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await?;
    tokio::spawn(async move {
        loop {
            let set: Vec<String> = instances
                .borrow_and_update()
                .iter()
                .map(|i| format!("{} (weight {})", i.address, i.weight))
                .collect();
            println!("instances of Echo: {set:?}");
            if instances.changed().await.is_err() {
                return;
            }
        }
    });

    // One Weft client per instance, balanced, with retries around.
    let balance = Balance::new(
        &discover,
        "Echo",
        |i: &Instance| {
            EchoClient::new(
                &i.address,
                Transport::TTHeader,
                Protocol::Binary,
                ConnectionMode::Multiplexed,
            )
            .inner
        },
        BalanceConfig::default(),
    )?;
    let client = RetryLayer::new(RetryPolicy::default())
        .idempotent(["add"])
        .layer(balance);

    for n in 0..calls {
        let mut cx = Context::new("Echo", "add");
        cx.deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        let req = Request::new(cx, EchoRequest::Add(EchoAddArgsSend { a: n as i64, b: 1 }));
        match client.clone().oneshot(req).await {
            Ok(r) => {
                let sum = match r.message {
                    EchoResponse::Add(weft_interop::EchoAddResultSend::Ok(v)) => v,
                    other => anyhow::bail!("unexpected answer {other:?}"),
                };
                let peer = r.cx.peer.map(|p| p.to_string()).unwrap_or_default();
                println!("add({n}, 1) = {sum} from {peer}");
            }
            Err(e) => println!("add({n}, 1) failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
