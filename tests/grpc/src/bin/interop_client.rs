//! Weft's gRPC interop client, with the official flags:
//! `interop_client --server_host H --server_port P --test_case CASE`
//! (`all` runs every case). Exits non-zero naming the failed cases.

use clap::Parser;
use weft_grpc_tests::cases::{run, Clients, CASES};

#[derive(Parser)]
struct Args {
    #[arg(long = "server_host", default_value = "127.0.0.1")]
    server_host: String,
    #[arg(long = "server_port", default_value_t = 10000)]
    server_port: u16,
    #[arg(long = "test_case", default_value = "all")]
    test_case: String,
    /// Accepted for compatibility with the official runners; TLS is not
    /// supported yet, so it must be false.
    #[arg(long = "use_tls", default_value = "false")]
    use_tls: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.use_tls == "false", "TLS is not supported yet");
    let addr = format!("{}:{}", args.server_host, args.server_port).parse()?;
    let clients = Clients::new(addr);
    let cases: Vec<&str> = if args.test_case == "all" {
        CASES.to_vec()
    } else {
        args.test_case.split(',').collect()
    };
    let mut failed = Vec::new();
    for case in cases {
        match run(&clients, case).await {
            Ok(()) => println!("PASS {case}"),
            Err(e) => {
                println!("FAIL {case}: {e:#}");
                failed.push(case);
            }
        }
    }
    anyhow::ensure!(failed.is_empty(), "failed: {}", failed.join(", "));
    Ok(())
}
