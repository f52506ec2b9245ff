//! Interop with Apache Thrift's Java library (`org.apache.thrift:libthrift`
//! 0.17.0 from Maven Central, the version of the compiler that generates
//! the code), both ways: the Java cross-test client against Weft's
//! cross-test server, and Weft's cross-test client against the Java server,
//! for binary and compact × buffered and framed (the Java library has no
//! THeader). Every `ThriftTest` method, every result checked. The Java
//! program lives in `tests/interop/java`; `scripts/interop.sh` builds it.

mod support;

use support::{cell, peer, run_client, start_server, weft_cross_server, Cell};
use weft::{
    core::Address,
    thrift::{Protocol, Transport},
};
use weft_codegen_tests::{cross, thrift_test::thrifttest::SecondServiceClient};

const PEER: &str = "Apache Thrift Java 0.17";

fn wire(protocol: &str, transport: &str) -> (Transport, Protocol) {
    let p = match protocol {
        "binary" => Protocol::Binary,
        "compact" => Protocol::Compact,
        other => panic!("no such protocol {other}"),
    };
    match transport {
        "buffered" => (Transport::Buffered, p),
        "framed" => (Transport::Framed, p),
        other => panic!("no such transport {other}"),
    }
}

async fn java_client_weft_server(protocol: &'static str, transport: &'static str) {
    let c = Cell {
        peer: PEER,
        direction: "Java client → Weft server",
        transport,
        protocol,
        check: "every method",
    };
    cell(c, async {
        let (_server, addr) = weft_cross_server().await;
        run_client(
            &peer("java-peer"),
            &[
                "client",
                &format!("--addr={addr}"),
                &format!("--protocol={protocol}"),
                &format!("--transport={transport}"),
            ],
        )
        .await
    })
    .await;
}

async fn weft_client_java_server(protocol: &'static str, transport: &'static str) {
    let (t, p) = wire(protocol, transport);
    let c = Cell {
        peer: PEER,
        direction: "Weft client → Java server",
        transport,
        protocol,
        check: "every method",
    };
    cell(c, async {
        let server = match start_server(
            &peer("java-peer"),
            &[
                "server",
                &format!("--protocol={protocol}"),
                &format!("--transport={transport}"),
            ],
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let addr: Address = server.addr.parse().unwrap();
        let (client, _) = cross::clients(&addr, p, false, t);
        cross::battery(&client, None::<&SecondServiceClient>).await
    })
    .await;
}

macro_rules! cells {
    ($($name:ident: $protocol:literal, $transport:literal;)*) => {
        mod java_client_weft_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::java_client_weft_server($protocol, $transport).await
                }
            )*
        }
        mod weft_client_java_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::weft_client_java_server($protocol, $transport).await
                }
            )*
        }
    };
}

cells! {
    binary_buffered: "binary", "buffered";
    binary_framed: "binary", "framed";
    compact_buffered: "compact", "buffered";
    compact_framed: "compact", "framed";
}
