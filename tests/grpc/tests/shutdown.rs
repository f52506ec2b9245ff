//! Graceful shutdown of a gRPC server under load: every unary call gets a
//! response or a definite "not processed" refusal (never an answer lost
//! after the handler ran), every stream in flight finishes, and the server
//! counts exactly the calls the clients saw succeed.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use weft::{
    core::{tower, Context, Request, ServerBuilder},
    protobuf::{GrpcClient, GrpcServer},
};
use weft_grpc_tests::{
    pb::*,
    server::Interop,
    service::{TestServiceClient, TestServiceRequest, TestServiceResponse, TestServiceServer},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_server_drains_under_load() {
    let handled = Arc::new(AtomicUsize::new(0));
    let inner = TestServiceServer::new(Interop);
    let counting = {
        let handled = handled.clone();
        tower::service_fn(move |req: Request<TestServiceRequest>| {
            if matches!(req.message, TestServiceRequest::EmptyCall(_)) {
                handled.fetch_add(1, Ordering::SeqCst);
            }
            let mut inner = inner.clone();
            async move { tower::Service::call(&mut inner, req).await }
        })
    };
    let server =
        GrpcServer::new().add_service::<TestServiceRequest, TestServiceResponse, _>(counting);
    let handle = server
        .serve(
            ServerBuilder::new().drain_timeout(Duration::from_secs(10)),
            &"127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
    let addr = handle.local_addr().clone();

    // Streams of 10 messages 50 ms apart, started before the shutdown.
    let streaming = TestServiceClient::new(GrpcClient::new(addr.clone()));
    let mut streams = Vec::new();
    for _ in 0..8 {
        let req = StreamingOutputCallRequest {
            response_parameters: (0..10)
                .map(|_| ResponseParameters {
                    size: 100,
                    interval_us: 50_000,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let mut s = streaming
            .streaming_output_call(Context::default(), &req)
            .await
            .unwrap()
            .message;
        streams.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(m) = s.message().await.transpose() {
                m.expect("a stream in flight finishes");
                n += 1;
            }
            n
        }));
    }

    // Unary callers hammering the server on 4 connections until told to stop.
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util_stop();
    let mut callers = Vec::new();
    for _ in 0..4 {
        let client = TestServiceClient::new(GrpcClient::new(addr.clone()));
        for _ in 0..16 {
            let client = client.clone();
            let (ok, refused, stop) = (ok.clone(), refused.clone(), stop.clone());
            callers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let mut cx = Context::default();
                    cx.set_timeout(Duration::from_secs(10));
                    match client.empty_call(cx, &Empty {}).await {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(s) => {
                            assert!(s.is_not_sent(), "a call ended in doubt: {s}");
                            refused.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }));
        }
    }
    // The load spans the drain: calls answered before it, and calls refused
    // by it, waited for rather than timed.
    until("calls answered before the drain", || {
        ok.load(Ordering::SeqCst) >= 100
    })
    .await;
    let before = ok.load(Ordering::SeqCst);
    let shutdown = tokio::spawn(handle.shutdown());
    until("calls refused by the drain", || {
        refused.load(Ordering::SeqCst) >= 10
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        tokio::time::timeout(Duration::from_secs(15), c)
            .await
            .expect("every call ended")
            .unwrap();
    }
    for s in streams {
        let n = tokio::time::timeout(Duration::from_secs(15), s)
            .await
            .expect("every stream ended")
            .unwrap();
        assert_eq!(n, 10, "a stream in flight lost messages");
    }
    tokio::time::timeout(Duration::from_secs(15), shutdown)
        .await
        .expect("the drain finished")
        .unwrap();
    let (ok, refused, handled) = (
        ok.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
        handled.load(Ordering::SeqCst),
    );
    eprintln!(
        "{before} calls before the drain; {ok} answered, {refused} refused, {handled} handled"
    );
    assert!(before > 0 && refused > 0, "the load did not span the drain");
    assert_eq!(handled, ok, "a handled call's answer was lost");
}

fn tokio_util_stop() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

/// Wait until `cond` holds, polling, for at most 10 s.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A draining server closes its connection only once the peer has stopped
/// writing (or its linger ran out): closing a socket with unread bytes makes
/// the kernel reset it, and a reset can destroy the final GOAWAY in the
/// peer's buffer, leaving its calls in doubt. Here the peer keeps writing
/// PINGs through the whole drain; it must see the GOAWAY and a clean end of
/// stream, and none of its writes may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_connection_is_not_reset_while_its_peer_still_writes() {
    use bytes::{BufMut, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use weft_grpc_tests::wire::{frame, PREFACE};

    let handle = TestServiceServer::new(Interop)
        .register(GrpcServer::new())
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = match handle.local_addr() {
        weft::core::Address::Tcp(a) => *a,
        _ => unreachable!(),
    };
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let mut hello = BytesMut::new();
    hello.put_slice(PREFACE);
    frame(&mut hello, 4, 0, 0, &[]);
    wr.write_all(&hello).await.unwrap();

    // The reader hands the server's PINGs to the writer to acknowledge (the
    // drain's GOAWAY waits for one) and reports what ended the stream.
    let (acks, mut to_ack) = tokio::sync::mpsc::unbounded_channel::<[u8; 8]>();
    let went_away = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = went_away.clone();
    let reader = tokio::spawn(async move {
        let (mut buf, mut goaway) = (BytesMut::new(), false);
        let mut chunk = [0u8; 16384];
        loop {
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let f = buf.split_to(9 + len);
                match (f[3], f[4] & 1) {
                    (7, _) => {
                        goaway = true;
                        seen.store(true, Ordering::SeqCst);
                    }
                    (6, 0) if len == 8 => {
                        let _ = acks.send(f[9..17].try_into().unwrap());
                    }
                    _ => {}
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) => return (goaway, Ok(())),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return (goaway, Err(e)),
            }
        }
    });
    // Writing goes on for 200 ms past the first GOAWAY: through the final
    // one and into the server's close, well inside its 1 s linger.
    let writer = tokio::spawn(async move {
        let cap = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut end = cap;
        let mut n = 0u64;
        while tokio::time::Instant::now() < end {
            if end == cap && went_away.load(Ordering::SeqCst) {
                end = tokio::time::Instant::now() + Duration::from_millis(200);
            }
            let mut b = BytesMut::new();
            while let Ok(p) = to_ack.try_recv() {
                frame(&mut b, 6, 1, 0, &p);
            }
            n += 1;
            frame(&mut b, 6, 0, 0, &n.to_be_bytes());
            wr.write_all(&b).await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        wr.shutdown().await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shutdown = tokio::spawn(handle.shutdown());

    let wrote = writer.await.unwrap();
    let (goaway, read) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the server closed the connection")
        .unwrap();
    assert!(goaway, "the server sent no GOAWAY");
    read.expect("the connection ended in a reset, not a clean close");
    wrote.expect("a write failed: the server reset the connection");
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("the drain finished")
        .unwrap();
}
