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
