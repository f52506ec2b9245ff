//! The default client and server stacks, assembled by `ClientStack` and
//! `ServerStack`, over real sockets with several Weft servers — and wrapped
//! in a tower layer Weft did not write.

use std::time::Duration;

use tower::{Layer, ServiceBuilder, ServiceExt};
use weft::core::{
    Code, ConnectionMode, Context, Instance, Limits, Request, ServerBuilder, ServerHandle,
    StaticDiscover, Status,
};
use weft::thrift::{Protocol, ThriftServerCodec, Transport};
use weft_interop::{
    EchoAddArgsSend, EchoAddResultSend, EchoClient, EchoHandler, EchoRequest, EchoResponse,
    EchoSlowArgsSend, Payload,
};
use weft_middleware::{ClientStack, FaultConfig, FaultLayer, PerMethod, RetryLayer, ServerStack};

async fn server(failing: bool) -> ServerHandle {
    let stack = ServerStack::new().concurrency_limit(256);
    let handler = EchoHandler::default();
    let limits = Limits::default();
    let codec = move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits);
    let addr = "127.0.0.1:0".parse().unwrap();
    if failing {
        let faulty =
            FaultLayer::new(FaultConfig::none().error(1.0, Status::unavailable("injected")))
                .layer(handler);
        ServerBuilder::new()
            .serve(&addr, codec, stack.build(faulty))
            .await
            .unwrap()
    } else {
        ServerBuilder::new()
            .serve(&addr, codec, stack.build(handler))
            .await
            .unwrap()
    }
}

fn call(method: &'static str, message: EchoRequest) -> Request<EchoRequest> {
    let mut cx = Context::new("Echo", method);
    cx.caller = "stack-test".into();
    Request::new(cx, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_stack_balances_retries_and_times_out_per_method() {
    let servers = [server(false).await, server(false).await, server(true).await];
    let discover = StaticDiscover::from_addresses(servers.iter().map(|s| s.local_addr().clone()));
    let stack = ClientStack::new()
        .retry(Some(RetryLayer::default().idempotent(["add"])))
        .total_timeout(PerMethod::new(None).with("slow", Some(Duration::from_millis(50))))
        .build(&discover, "Echo", |inst: &Instance| {
            EchoClient::new(
                &inst.address,
                Transport::TTHeader,
                Protocol::Binary,
                ConnectionMode::Multiplexed,
            )
            .inner
        })
        .unwrap();
    // A tower layer from outside Weft wraps the whole Weft stack.
    let client = ServiceBuilder::new()
        .layer(tower::limit::ConcurrencyLimitLayer::new(8))
        .service(stack);

    let mut failed = 0;
    for i in 0..300 {
        let req = call("add", EchoRequest::Add(EchoAddArgsSend { a: i, b: 1 }));
        match client.clone().oneshot(req).await {
            Ok(r) => assert_eq!(r.message, EchoResponse::Add(EchoAddResultSend::Ok(i + 1))),
            Err(_) => failed += 1,
        }
    }
    // One instance in three fails every call; retries and breakers hide it.
    assert_eq!(failed, 0);

    let slow = call(
        "slow",
        EchoRequest::Slow(EchoSlowArgsSend {
            payload: Payload::default(),
            millis: 2_000,
        }),
    );
    let err = client.clone().oneshot(slow).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
}
