//! Weft client against Weft server over every transport, protocol and
//! connection mode, on real loopback sockets.

use std::time::Duration;

use weft::core::{Code, ConnectionMode, Context, ServerBuilder};
use weft::thrift::{Protocol, Transport};
use weft_interop::{assert_payload_eq, sample_payload, serve, EchoClient, EchoHandler};

const TRANSPORTS: [Transport; 4] = [
    Transport::Framed,
    Transport::Buffered,
    Transport::TTHeader,
    Transport::THeader,
];
const PROTOCOLS: [Protocol; 2] = [Protocol::Binary, Protocol::Compact];

#[tokio::test]
async fn every_transport_protocol_and_mode_round_trips() {
    let handler = EchoHandler::default();
    let server = serve("127.0.0.1:0", ServerBuilder::new(), handler.clone())
        .await
        .unwrap();
    let addr = server.local_addr().clone();
    let mut sent = Vec::new();
    for transport in TRANSPORTS {
        for protocol in PROTOCOLS {
            for mode in [ConnectionMode::Pooled, ConnectionMode::Multiplexed] {
                let what = format!("{transport:?}/{protocol:?}/{mode:?}");
                let client = EchoClient::new(&addr, transport, protocol, mode);
                let p = sample_payload(1 << 20);
                let got = client
                    .echo(Context::default(), p.clone())
                    .await
                    .expect(&what);
                assert_payload_eq(&got, &p, &what);
                assert_eq!(
                    client.add(Context::default(), 40, 2).await.unwrap(),
                    42,
                    "{what}"
                );
                let e = client
                    .fail(Context::default(), 7, "boom")
                    .await
                    .unwrap()
                    .unwrap_err();
                assert_eq!(
                    (e.code, e.message.as_deref()),
                    (Some(7), Some("boom")),
                    "{what}"
                );
                let s = client
                    .fail(Context::default(), -1, "undeclared")
                    .await
                    .unwrap_err();
                assert_eq!(s.code(), Code::Internal, "{what}");
                assert_eq!(s.message(), "undeclared", "{what}");
                client.ping(Context::default()).await.unwrap();
                client.notify(Context::default(), &what).await.unwrap();
                sent.push(what);
            }
        }
    }
    // One-way calls arrive, eventually, without responses: exactly the ones
    // sent, each once. Waited for by condition, with a bound generous for a
    // loaded machine.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while handler.notes.lock().await.len() < sent.len() && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut got = handler.notes.lock().await.clone();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "one-way calls received vs sent");
    server.shutdown().await;
}

#[tokio::test]
async fn metainfo_crosses_ttheader_in_both_directions() {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let client = EchoClient::new(
        server.local_addr(),
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    );
    let mut cx = Context::default();
    cx.metainfo.persistent.insert("tenant", "blue");
    cx.metainfo.transient.insert("hop", "one");
    let (v, resp) = client.metainfo(cx.clone(), "tenant").await.unwrap();
    assert_eq!(v, "blue");
    assert_eq!(resp.metainfo.backward.get("echo-tenant").unwrap(), "blue");
    let (v, _) = client.metainfo(cx, "hop").await.unwrap();
    assert_eq!(v, "one");
}

#[tokio::test]
async fn multiplexed_service_names_are_stripped_and_seen() {
    let server = serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let limits = weft::core::Limits::default();
    let codec = weft::thrift::ThriftClientCodec::new(Transport::Framed, Protocol::Binary, &limits)
        .multiplexed("Echo");
    let client = EchoClient::with(
        weft::core::ClientBuilder::new(server.local_addr().clone()).mode(ConnectionMode::Pooled),
        codec,
    );
    assert_eq!(client.add(Context::default(), 20, 22).await.unwrap(), 42);
    let mut cx = Context::default();
    cx.metainfo.persistent.insert("k", "v");
    // Framed Thrift has no headers: metainfo stays behind, the call still works.
    let (v, _) = client.metainfo(cx, "k").await.unwrap();
    assert_eq!(v, "");
}

#[tokio::test]
async fn unix_socket_serves_too() {
    let path = std::env::temp_dir().join(format!("weft-rt-{}.sock", std::process::id()));
    let addr = format!("unix:{}", path.display());
    let server = serve(&addr, ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let client = EchoClient::new(
        server.local_addr(),
        Transport::Framed,
        Protocol::Compact,
        ConnectionMode::Pooled,
    );
    assert_eq!(client.add(Context::default(), 1, 2).await.unwrap(), 3);
    server.shutdown().await;
}
