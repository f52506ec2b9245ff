//! The Hello server on 127.0.0.1:9090, until Ctrl-C, observed: metrics,
//! a span per call and an access log line per call, and the admin endpoint
//! on 127.0.0.1:9091 (`/metrics`, `/healthz`, `/readyz`, `/status`).

use weft::core::ServerBuilder;
use weft::middleware::{
    observe::admin::{prometheus_builder, Admin},
    AccessLog, ObserveLayer, ServerStack, System,
};
use weft_example_hello::{Greeter, HelloServer, ADDRESS};

/// Where the admin endpoint listens.
const ADMIN: &str = "127.0.0.1:9091";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Prints the access log (target `weft::access`) and other INFO events.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .init();
    // The global recorder first: metric handles made before it record nothing.
    let prometheus = prometheus_builder().install_recorder()?;
    let observe = ObserveLayer::server(System::Thrift).access_log(Some(AccessLog::all()));
    let stack = ServerStack::new().observe(Some(observe.clone()));
    let builder = ServerBuilder::new();
    let limits = builder.limits_ref().clone();
    let server = builder
        .serve(
            &ADDRESS.parse()?,
            move || HelloServer::<Greeter>::codec(&limits),
            stack.build(HelloServer::new(Greeter)),
        )
        .await?;
    let admin = Admin::new()
        .prometheus(prometheus)
        .observe(&observe)
        .watch(server.watch())
        .serve(ADMIN.parse()?)
        .await?;
    println!(
        "server: listening on {}, admin on http://{}/metrics; Ctrl-C stops it",
        server.local_addr(),
        admin.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    // /readyz answers 503 from the first moment of the shutdown.
    server.shutdown().await;
    admin.shutdown().await;
    println!("server: shut down gracefully");
    Ok(())
}
