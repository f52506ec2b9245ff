//! tonic's gRPC interop server: `tonic_interop_server --port N`.

use clap::Parser;
use tonic::codec::CompressionEncoding;
use weft_grpc_tonic::{
    pb::test_service_server::TestServiceServer,
    server::{EchoMetadata, Interop},
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10000)]
    port: u16,
    /// TLS is not supported here: it must be false.
    #[arg(long = "use_tls", default_value = "false")]
    use_tls: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.use_tls == "false", "TLS is not supported");
    let service = TestServiceServer::new(Interop)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let addr = format!("127.0.0.1:{}", args.port).parse()?;
    println!("listening on {addr}");
    tonic::transport::Server::builder()
        .layer(tower::layer::layer_fn(EchoMetadata))
        .add_service(service)
        .serve_with_shutdown(addr, async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}
