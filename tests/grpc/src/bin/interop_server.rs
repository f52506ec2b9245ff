//! Weft's gRPC interop server: `interop_server --port N`.

use clap::Parser;
use weft::{core::ServerBuilder, protobuf::GrpcServer};
use weft_grpc_tests::{server::Interop, service::TestServiceServer};

#[derive(Parser)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0 picks one; it is printed).
    #[arg(long, default_value_t = 10000)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = TestServiceServer::new(Interop).register(GrpcServer::new());
    let handle = server
        .serve(
            ServerBuilder::new(),
            &format!("127.0.0.1:{}", args.port).parse()?,
        )
        .await?;
    println!("listening on {}", handle.local_addr());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
