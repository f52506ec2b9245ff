//! Client errors say where and what, over real loopback sockets: the
//! address that refused, and an answer that is not Thrift (an HTTP server's
//! status line) reported as such. (The hint for a server that hangs up on
//! a TTHeader frame is tested against Apache's Python server in
//! `cross_test.rs`.)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft::{
    core::{Address, ClientBuilder, Code, ConnectionMode},
    thrift::{Protocol, Transport},
};
use weft_codegen_tests::thrift_test::thrifttest::ThriftTestClient;

fn client(addr: &Address, mode: ConnectionMode, transport: Transport) -> ThriftTestClient {
    let builder = ClientBuilder::new(addr.clone())
        .mode(mode)
        .timeout(Duration::from_secs(5));
    ThriftTestClient::new(builder, transport, Protocol::Binary)
}

const MODES: [ConnectionMode; 2] = [ConnectionMode::Pooled, ConnectionMode::Multiplexed];

#[tokio::test]
async fn a_refused_connection_names_the_address() {
    let dead: Address = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().into()
    };
    for mode in MODES {
        let e = client(&dead, mode, Transport::Framed)
            .test_void()
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains(&dead.to_string()), "{mode:?}: {m}");
        assert!(m.contains("refused"), "{mode:?}: {m}");
    }
}

#[tokio::test]
async fn an_http_answer_is_reported_as_http() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: Address = listener.local_addr().unwrap().into();
    // A tiny HTTP server: whatever it is sent, it answers 400 and closes,
    // as HTTP servers do with bytes that are not HTTP.
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    for mode in MODES {
        for transport in [
            Transport::Framed,
            Transport::Buffered,
            Transport::TTHeader,
            Transport::THeader,
            Transport::FramedTHeader,
        ] {
            let e = client(&addr, mode, transport)
                .test_void()
                .await
                .unwrap_err();
            let m = e.to_string();
            assert!(
                m.contains("answered in HTTP") && m.contains("HTTP/1.1 400 Bad Request"),
                "{mode:?} {transport:?}: {m}"
            );
            assert_ne!(e.code(), Code::InvalidArgument, "{mode:?} {transport:?}");
        }
    }
}
