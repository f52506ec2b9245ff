//! Apache Thrift's cross-test server on Weft: `ThriftTest` and
//! `SecondService` with the semantics of Apache's `TestServer`s. Takes
//! Apache's flags; Weft serves every transport and protocol on one port, so
//! `--protocol` and `--transport` are checked but change nothing. Prints
//! `listening on ADDRESS` once it accepts connections.

use clap::Parser;
use weft::core::Address;
use weft_codegen_tests::cross;

/// Apache Thrift cross-test server
#[derive(Debug, Parser)]
struct Args {
    /// TCP port (0 picks one)
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// binary, compact, header, multi, multic or multih
    #[arg(long, default_value = "binary")]
    protocol: String,
    /// buffered or framed
    #[arg(long, default_value = "buffered")]
    transport: String,
    /// Listen on this Unix socket instead of TCP
    #[arg(long)]
    domain_socket: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    cross::parse_flags(&a.protocol, &a.transport)?;
    let addr: Address = match &a.domain_socket {
        Some(path) => format!("unix:{path}").parse()?,
        None => format!("127.0.0.1:{}", a.port).parse()?,
    };
    let server = cross::serve(&addr).await?;
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
