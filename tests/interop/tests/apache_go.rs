//! Interop with Apache Thrift's Go library (`github.com/apache/thrift`
//! v0.25.0, code from Apache's compiler), both ways: the Go cross-test
//! client against Weft's cross-test server, and Weft's cross-test client
//! against the Go server, for binary and compact × buffered and framed, and
//! THeader (binary and compact inside). Every `ThriftTest` method, every
//! result checked. The Go programs live in `tests/interop/go`;
//! `scripts/interop.sh` builds them.

mod support;

use support::{cell, peer, run_client, start_server, weft_cross_server, Cell, EmptyIsAbsent};
use weft::{
    core::Address,
    thrift::{Protocol, Transport},
};
use weft_codegen_tests::{
    cross,
    thrift_test::thrifttest::{SecondServiceClient, ThriftTestClient},
};

/// The Go peer's flags for a cell, and Weft's transport and protocol.
fn wire(protocol: &str, transport: &str) -> (Transport, Protocol, &'static str) {
    match (protocol, transport) {
        ("header", _) => (Transport::THeader, Protocol::Binary, "THeader"),
        ("header-compact", _) => (Transport::THeader, Protocol::Compact, "THeader"),
        (p, "buffered") => (Transport::Buffered, proto(p), "buffered"),
        (p, "framed") => (Transport::Framed, proto(p), "framed"),
        other => panic!("no such cell {other:?}"),
    }
}

fn proto(p: &str) -> Protocol {
    match p {
        "binary" => Protocol::Binary,
        "compact" => Protocol::Compact,
        other => panic!("no such protocol {other}"),
    }
}

fn table_protocol(p: &'static str) -> &'static str {
    match p {
        "header" => "binary",
        "header-compact" => "compact",
        p => p,
    }
}

async fn go_client_weft_server(protocol: &'static str, transport: &'static str) {
    let (_, _, label) = wire(protocol, transport);
    let c = Cell {
        peer: "Apache Thrift Go 0.25",
        direction: "Go client → Weft server",
        transport: label,
        protocol: table_protocol(protocol),
        check: "every method",
    };
    cell(c, async {
        let (_server, addr) = weft_cross_server().await;
        run_client(
            &peer("apache-peer"),
            &[
                "client",
                "-addr",
                &addr,
                "-protocol",
                protocol,
                "-transport",
                transport,
            ],
        )
        .await
    })
    .await;
}

async fn weft_client_go_server(protocol: &'static str, transport: &'static str) {
    let (t, p, label) = wire(protocol, transport);
    let c = Cell {
        peer: "Apache Thrift Go 0.25",
        direction: "Weft client → Go server",
        transport: label,
        protocol: table_protocol(protocol),
        check: "every method",
    };
    cell(c, async {
        let server = match start_server(
            &peer("apache-peer"),
            &["server", "-protocol", protocol, "-transport", transport],
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let addr: Address = server.addr.parse().unwrap();
        let (client, _) = cross::clients(&addr, p, false, t);
        let client = ThriftTestClient::from_service(EmptyIsAbsent(client.into_inner()));
        cross::battery(&client, None::<&SecondServiceClient>).await
    })
    .await;
}

macro_rules! cells {
    ($($name:ident: $protocol:literal, $transport:literal;)*) => {
        mod go_client_weft_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::go_client_weft_server($protocol, $transport).await
                }
            )*
        }
        mod weft_client_go_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::weft_client_go_server($protocol, $transport).await
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
    header_binary: "header", "framed";
    header_compact: "header-compact", "framed";
}
