//! Apache Thrift's cross-test client on Weft: calls every `ThriftTest`
//! method (and `SecondService` with a multiplexed protocol) and checks every
//! result. Takes Apache's flags; exits with status 1 listing what failed.

use clap::Parser;
use weft::core::Address;
use weft_codegen_tests::cross;

/// Apache Thrift cross-test client
#[derive(Debug, Parser)]
struct Args {
    /// Server host (an IP address)
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// binary, compact, header, multi, multic or multih
    #[arg(long, default_value = "binary")]
    protocol: String,
    /// buffered or framed
    #[arg(long, default_value = "buffered")]
    transport: String,
    /// Connect to this Unix socket instead of TCP
    #[arg(long)]
    domain_socket: Option<String>,
    /// Run the battery this many times
    #[arg(long, default_value_t = 1)]
    testloops: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let (protocol, multi, transport) = cross::parse_flags(&a.protocol, &a.transport)?;
    let addr: Address = match &a.domain_socket {
        Some(path) => format!("unix:{path}").parse()?,
        None => format!("{}:{}", a.host, a.port).parse()?,
    };
    let (client, second) = cross::clients(&addr, protocol, multi, transport);
    for _ in 0..a.testloops {
        let errors = cross::battery(&client, multi.then_some(&second)).await;
        if !errors.is_empty() {
            for e in &errors {
                eprintln!("FAIL {e}");
            }
            std::process::exit(1);
        }
    }
    println!("all tests passed");
    Ok(())
}
