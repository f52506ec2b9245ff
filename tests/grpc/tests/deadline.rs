//! A deadline set by a Thrift caller crosses a Thrift hop and then a gRPC
//! hop (carried as TTHeader's timeout, then as `grpc-timeout`) and cancels
//! the handler at the end when it passes.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use weft::{
    core::{faststr::FastStr, ClientBuilder, Code, Context, ServerBuilder, Status},
    protobuf::{GrpcClient, GrpcServer, ResponseStream, Streaming},
    thrift::{Protocol, Transport},
};
use weft_example_hello::{Greeting, Hello, HelloClient, HelloLookupError, HelloServer};
use weft_grpc_tests::{
    pb::*,
    service::{TestService, TestServiceClient, TestServiceServer},
};

/// The gRPC end: `EmptyCall` sleeps far past any deadline and records
/// whether it was cancelled (dropped) or ran to its end.
struct Sleeper {
    started: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
    remaining_ms: Arc<std::sync::Mutex<Option<u128>>>,
}

struct OnDrop(Arc<AtomicBool>, bool);
impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

fn unused<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not used here"))
}

impl TestService for Sleeper {
    async fn empty_call(&self, cx: &mut Context, _: Empty) -> Result<Empty, Status> {
        *self.remaining_ms.lock().unwrap() = cx.remaining().map(|d| d.as_millis());
        self.started.store(true, Ordering::SeqCst);
        let mut guard = OnDrop(self.cancelled.clone(), false);
        tokio::time::sleep(Duration::from_secs(30)).await;
        guard.1 = true;
        Ok(Empty {})
    }
    async fn unary_call(
        &self,
        _: &mut Context,
        _: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        unused()
    }
    async fn cacheable_unary_call(
        &self,
        _: &mut Context,
        _: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        unused()
    }
    async fn streaming_output_call(
        &self,
        _: &mut Context,
        _: StreamingOutputCallRequest,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        unused()
    }
    async fn streaming_input_call(
        &self,
        _: &mut Context,
        _: Streaming<StreamingInputCallRequest>,
    ) -> Result<StreamingInputCallResponse, Status> {
        unused()
    }
    async fn full_duplex_call(
        &self,
        _: &mut Context,
        _: Streaming<StreamingOutputCallRequest>,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        unused()
    }
    async fn half_duplex_call(
        &self,
        _: &mut Context,
        _: Streaming<StreamingOutputCallRequest>,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        unused()
    }
    async fn unimplemented_call(&self, _: &mut Context, _: Empty) -> Result<Empty, Status> {
        unused()
    }
}

/// The Thrift hop: `greet` calls the gRPC service with the caller's
/// deadline (`Context::child`).
struct Forwarder(TestServiceClient<GrpcClient>);

impl Hello for Forwarder {
    async fn greet(
        &self,
        cx: &mut Context,
        _name: FastStr,
        _times: i64,
    ) -> Result<Greeting, Status> {
        let child = cx.child("grpc.testing.TestService", "EmptyCall");
        self.0.empty_call(child, &Empty {}).await?;
        Ok(Greeting::default())
    }
    async fn lookup(&self, _: &mut Context, _: FastStr) -> Result<FastStr, HelloLookupError> {
        Err(HelloLookupError::Status(Status::unimplemented("not used")))
    }
    async fn log(&self, _: &mut Context, _: FastStr) -> Result<(), Status> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thrift_deadline_cancels_the_grpc_handler_two_hops_away() {
    let sleeper = Sleeper {
        started: Arc::default(),
        cancelled: Arc::default(),
        remaining_ms: Arc::default(),
    };
    let (started, cancelled, remaining) = (
        sleeper.started.clone(),
        sleeper.cancelled.clone(),
        sleeper.remaining_ms.clone(),
    );
    let grpc = TestServiceServer::new(sleeper)
        .register(GrpcServer::new())
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let forwarder = Forwarder(TestServiceClient::new(GrpcClient::new(
        grpc.local_addr().clone(),
    )));
    let thrift = HelloServer::new(forwarder)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let client = HelloClient::new(
        ClientBuilder::new(thrift.local_addr().clone()),
        Transport::TTHeader,
        Protocol::Binary,
    );
    let mut cx = Context::new("Hello", "greet");
    cx.set_timeout(Duration::from_millis(400));
    let begun = tokio::time::Instant::now();
    let err = client
        .with_context(&cx)
        .greet("x".into(), 1)
        .await
        .map(|(v, _)| v)
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );

    // The gRPC handler saw what was left of the caller's 400 ms, and was
    // dropped when it ran out, long before its 30 s sleep.
    until("the gRPC handler is dropped", || {
        cancelled.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        started.load(Ordering::SeqCst),
        "the call never reached the gRPC hop"
    );
    let left = remaining
        .lock()
        .unwrap()
        .expect("the gRPC hop had a deadline");
    assert!(left <= 400 && left > 100, "{left} ms left at the gRPC hop");
    assert!(
        cancelled.load(Ordering::SeqCst),
        "the gRPC handler was not cancelled"
    );
    thrift.abort().await;
    grpc.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_client_call_cancels_the_handler() {
    let sleeper = Sleeper {
        started: Arc::default(),
        cancelled: Arc::default(),
        remaining_ms: Arc::default(),
    };
    let (started, cancelled) = (sleeper.started.clone(), sleeper.cancelled.clone());
    let grpc = TestServiceServer::new(sleeper)
        .register(GrpcServer::new())
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = TestServiceClient::new(
        GrpcClient::builder(grpc.local_addr().clone())
            .no_timeout()
            .build(),
    );
    // No deadline anywhere: only the reset the dropped call sends can stop
    // the handler.
    let call = client.empty_call(Context::default(), &Empty {});
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());
    assert!(started.load(Ordering::SeqCst));
    until("the gRPC handler is dropped", || {
        cancelled.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        cancelled.load(Ordering::SeqCst),
        "the handler outlived the call"
    );
    grpc.abort().await;
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
