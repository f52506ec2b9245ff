//! Another protocol beside the codec on one listener: connections are told
//! apart by their first bytes, the protocol gets those bytes back, and the
//! server's connection slots and shutdown reach it.

use std::{future::Future, pin::Pin, time::Duration};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{Accepted, Limits, Protocol, ServerBuilder};

mod engine;

use engine::*;

/// Answers "ECHO" connections line by line; on drain, says "BYE" and closes.
struct Echo;

impl Protocol for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn preface(&self) -> &'static [u8] {
        b"ECHO\n"
    }

    fn serve(&self, conn: Accepted) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let Accepted {
                mut io, shutdown, ..
            } = conn;
            let mut buf = vec![0u8; 1024];
            let draining = shutdown.draining();
            tokio::pin!(draining);
            loop {
                tokio::select! {
                    n = io.read(&mut buf) => match n {
                        Ok(0) | Err(_) => return,
                        Ok(n) => if io.write_all(&buf[..n]).await.is_err() { return },
                    },
                    _ = &mut draining => {
                        let _ = io.write_all(b"BYE\n").await;
                        let _ = io.shutdown().await;
                        return;
                    }
                }
            }
        })
    }
}

async fn read_until(s: &mut tokio::net::TcpStream, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.windows(want.len()).any(|w| w == want) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("protocol answered in time")
            .unwrap();
        assert!(n > 0, "closed before {:?}: {:?}", want, got);
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test]
async fn codec_and_protocol_share_a_port() {
    let srv = start(ServerBuilder::new().protocol(Echo), false).await;

    // The preface arrives byte by byte, as a slow peer may send it, and is
    // replayed to the protocol whole.
    let mut echo = connect(&srv.handle).await;
    for b in b"ECHO\nhi\n" {
        echo.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let got = read_until(&mut echo, b"hi\n").await;
    assert!(got.starts_with(b"ECHO\n"), "{got:?}");

    // A codec frame on another connection is served by the codec.
    let a = call_once(&srv.handle, b"ping")
        .await
        .expect("codec answered");
    assert_eq!(&a.body[..], b"ping");

    // A frame that begins like the preface and then diverges is the
    // codec's: here it is a length prefix the codec rejects.
    let mut odd = connect(&srv.handle).await;
    odd.write_all(b"ECHX").await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), odd.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(n.is_err() || rest.is_empty());

    // Shutdown reaches the protocol's connection, and the server waits for it.
    let shutdown = tokio::spawn(srv.handle.shutdown());
    read_until(&mut echo, b"BYE\n").await;
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown finished")
        .unwrap();
    assert_eq!(
        srv.counters.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn protocol_connections_take_connection_slots() {
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let srv = start(ServerBuilder::new().limits(limits).protocol(Echo), false).await;
    let mut first = connect(&srv.handle).await;
    first.write_all(b"ECHO\n").await.unwrap();
    read_until(&mut first, b"ECHO\n").await;

    // The only slot is taken: a second connection is not served...
    let mut second = connect(&srv.handle).await;
    second.write_all(b"ECHO\nx\n").await.unwrap();
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf))
            .await
            .is_err(),
        "a connection past max_connections was served"
    );
    // ...until the first one leaves.
    drop(first);
    read_until(&mut second, b"x\n").await;
    srv.handle.abort().await;
}

#[tokio::test]
async fn serve_protocols_alone_closes_what_matches_none() {
    let handle = ServerBuilder::new()
        .protocol(Echo)
        .serve_protocols(&"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut s = connect(&handle).await;
    s.write_all(&frame(CALL, 1, 0, b"ping")).await.unwrap();
    let mut buf = BytesMut::new();
    assert!(
        answer(&mut s, &mut buf).await.is_none(),
        "a codec frame was answered"
    );

    let mut e = connect(&handle).await;
    e.write_all(b"ECHO\nyo\n").await.unwrap();
    read_until(&mut e, b"yo\n").await;
    handle.abort().await;
}
