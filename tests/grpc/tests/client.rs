//! Weft's gRPC client against servers that answer in ways Weft's own
//! server does not, but others (grpcio, grpc-go) do.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::net::TcpListener;
use weft::{
    core::{Address, Code, Context},
    protobuf::GrpcClient,
};
use weft_grpc_tests::{pb::Empty, service::TestServiceClient};

/// A server that answers every call from its headers alone, with a
/// trailers-only UNIMPLEMENTED, and closes the stream without reading the
/// request: as grpcio does for an unknown service. The client's message may
/// not be queued yet when the stream is already closed: a narrow race
/// (seen once in CI against grpcio), so the test makes many calls.
async fn answers_from_headers() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    drop(req);
                    let resp = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/grpc")
                        .header("grpc-status", "12")
                        .header("grpc-message", "unknown service")
                        .body(())
                        .unwrap();
                    let _ = respond.send_response(resp, true);
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailers_only_answer_before_the_message_is_sent_is_the_outcome() {
    let addr = answers_from_headers().await;
    let client = TestServiceClient::new(GrpcClient::new(Address::Tcp(addr)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut wrong = Vec::new();
            for _ in 0..1000 {
                let mut cx = Context::default();
                cx.set_timeout(Duration::from_secs(5));
                match client.empty_call(cx, &Empty::default()).await {
                    Err(s) if s.code() == Code::Unimplemented => {}
                    other => wrong.push(format!("{:?}", other.map(|_| ()))),
                }
            }
            wrong
        }));
    }
    let mut wrong = Vec::new();
    for t in tasks {
        wrong.extend(t.await.unwrap());
    }
    assert!(
        wrong.is_empty(),
        "{} of 8000 calls had another outcome than UNIMPLEMENTED, e.g. {}",
        wrong.len(),
        wrong[0]
    );
}

/// Read and discard until the peer closes its side (or a second passes):
/// closing with unread bytes would reset the connection and could destroy
/// the last frames before the client reads them.
async fn linger(s: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = s.shutdown().await;
        let mut buf = [0u8; 512];
        while let Ok(1..) = s.read(&mut buf).await {}
    })
    .await;
}

/// A server that answers one call on each connection, then starts its
/// graceful shutdown, as a draining server does, and answers
/// (UNIMPLEMENTED) every stream it accepted before its final GOAWAY.
async fn goes_away_after_one_call() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(mut conn) = h2::server::handshake(&mut s).await {
                    let mut first = true;
                    while let Some(Ok((_, mut respond))) = conn.accept().await {
                        let resp = http::Response::builder()
                            .status(200)
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "12")
                            .body(())
                            .unwrap();
                        let _ = respond.send_response(resp, true);
                        // GOAWAY right behind the first answer, in the
                        // same write: the client reads both at once.
                        if std::mem::take(&mut first) {
                            conn.graceful_shutdown();
                        }
                    }
                }
                linger(&mut s).await;
            });
        }
    });
    (addr, conns)
}

/// Calls racing a GOAWAY on every connection: each is answered or ends
/// "not sent" (refused past the last stream, or its connection closed
/// before it left), never in doubt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_a_connection_that_is_going_away_is_answered_or_not_sent() {
    let (addr, conns) = goes_away_after_one_call().await;
    let mut tasks = Vec::new();
    // Each caller alone on its connection: a stream opened while another is
    // open would keep the connection from closing.
    for _ in 0..8 {
        let client = TestServiceClient::new(GrpcClient::new(Address::Tcp(addr)));
        tasks.push(tokio::spawn(async move {
            let (mut answered, mut not_sent, mut wrong) = (0, 0, Vec::new());
            for _ in 0..250 {
                let mut cx = Context::default();
                cx.set_timeout(Duration::from_secs(5));
                match client.empty_call(cx, &Empty::default()).await {
                    Err(s) if s.code() == Code::Unimplemented => answered += 1,
                    Err(s) if s.is_not_sent() => {
                        not_sent += 1;
                        if not_sent % 50 == 1 {
                            eprintln!("{s}");
                        }
                    }
                    other => wrong.push(format!("{:?}", other.map(|_| ()))),
                }
            }
            (answered, not_sent, wrong)
        }));
    }
    let (mut answered, mut not_sent, mut wrong) = (0, 0, Vec::new());
    for t in tasks {
        let (a, n, w) = t.await.unwrap();
        answered += a;
        not_sent += n;
        wrong.extend(w);
    }
    eprintln!(
        "{answered} answered, {not_sent} not sent, {} in doubt",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of 2000 calls ended in doubt, e.g. {}",
        wrong.len(),
        wrong[0]
    );
    let conns = conns.load(Ordering::Relaxed);
    assert!(conns > 100, "only {conns} connections: GOAWAY was not met");
}

/// A listener whose backlog is never accepted, then closed: the kernel
/// resets the connection waiting there. No server read the call, and the
/// client must say so ("not sent"), not leave it in doubt; a listener that
/// accepts but never speaks HTTP/2 is the same, at the connect timeout.
#[tokio::test]
async fn a_call_into_a_backlog_that_is_never_accepted_is_not_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TestServiceClient::new(GrpcClient::new(Address::Tcp(addr)));
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(listener);
    });
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(5));
    let s = client.empty_call(cx, &Empty::default()).await.unwrap_err();
    assert!(s.is_not_sent(), "the call ended in doubt: {s}");
    closer.await.unwrap();

    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let client = TestServiceClient::new(GrpcClient::new(Address::Tcp(addr)));
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(5));
    let s = client.empty_call(cx, &Empty::default()).await.unwrap_err();
    assert!(s.is_not_sent(), "the call ended in doubt: {s}");
    held.abort();
}
