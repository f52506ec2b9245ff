//! Weft's middleware on gRPC unary calls, unchanged from Thrift: the
//! default `ClientStack` balances over instances and retries only what is
//! safe; the default `ServerStack` sheds, and a shed call travels as
//! REFUSED_STREAM ("not processed"), so it is retried elsewhere.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use weft::{
    core::{tower, Code, Context, Request, ServerBuilder, ServerHandle, StaticDiscover, Status},
    middleware::{ClientStack, ServerStack},
    protobuf::{GrpcClient, GrpcServer},
};
use weft_grpc_tests::{
    pb::*,
    server::Interop,
    service::{TestServiceClient, TestServiceRequest, TestServiceResponse, TestServiceServer},
};

/// A server whose `EmptyCall` handler counts its calls and then fails
/// with `fail` (or succeeds), behind `stack`.
async fn server(stack: ServerStack, calls: Arc<AtomicUsize>, fail: Option<Code>) -> ServerHandle {
    let inner = TestServiceServer::new(Interop);
    let handler = tower::service_fn(move |req: Request<TestServiceRequest>| {
        let calls = calls.clone();
        let mut inner = inner.clone();
        async move {
            if matches!(req.message, TestServiceRequest::EmptyCall(_)) {
                calls.fetch_add(1, Ordering::SeqCst);
                if let Some(code) = fail {
                    // Work done, then a failure (as a downstream call
                    // failing would be): it may have had side effects.
                    return Err(Status::new(code, "failed after doing its work"));
                }
            }
            tower::Service::call(&mut inner, req).await
        }
    });
    let svc = stack.build(handler);
    GrpcServer::new()
        .add_service::<TestServiceRequest, TestServiceResponse, _>(svc)
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn cx() -> Context {
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_secs(5));
    cx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_may_have_run_is_never_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let a = server(ServerStack::new(), calls.clone(), Some(Code::Unavailable)).await;
    let b = server(ServerStack::new(), calls.clone(), Some(Code::Unavailable)).await;
    let discover = StaticDiscover::from_addresses([a.local_addr().clone(), b.local_addr().clone()]);
    let stack = ClientStack::new()
        .build(&discover, "grpc.testing.TestService", |inst| {
            GrpcClient::new(inst.address.clone())
        })
        .unwrap();
    let client = TestServiceClient::new(stack);
    let mut ran = 0;
    for _ in 0..20 {
        let err = client.empty_call(cx(), &Empty {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        // At most once each (once the breakers open, not at all).
        let now = calls.load(Ordering::SeqCst);
        assert!(
            now <= ran + 1,
            "a call was repeated: {now} runs after {ran}"
        );
        ran = now;
    }
    assert!(ran >= 5, "the calls never reached a server: {ran}");
    a.abort().await;
    b.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shed_call_is_retried_on_another_instance() {
    let (shed_calls, ok_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // One instance sheds everything past one call per hour.
    let shedding = server(
        ServerStack::new().rate_limit(1, Duration::from_secs(3600), 1),
        shed_calls.clone(),
        None,
    )
    .await;
    let healthy = server(ServerStack::new(), ok_calls.clone(), None).await;
    let discover = StaticDiscover::from_addresses([
        shedding.local_addr().clone(),
        healthy.local_addr().clone(),
    ]);
    let stack = ClientStack::new()
        .build(&discover, "grpc.testing.TestService", |inst| {
            GrpcClient::new(inst.address.clone())
        })
        .unwrap();
    let client = TestServiceClient::new(stack);
    for _ in 0..50 {
        client
            .empty_call(cx(), &Empty {})
            .await
            .expect("a shed call is retried elsewhere");
    }
    // Every call ran exactly once, on one server or the other.
    assert_eq!(
        shed_calls.load(Ordering::SeqCst) + ok_calls.load(Ordering::SeqCst),
        50
    );
    assert!(shed_calls.load(Ordering::SeqCst) <= 1);

    // Straight to the shedding server, without retries: the refusal shows
    // as UNAVAILABLE and "not sent".
    let direct = TestServiceClient::new(GrpcClient::new(shedding.local_addr().clone()));
    let _ = direct.empty_call(cx(), &Empty {}).await;
    let err = direct.empty_call(cx(), &Empty {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.is_not_sent(), "{err}");
    shedding.abort().await;
    healthy.abort().await;
}
