//! Deadlines over real sockets: a deadline set by the first caller travels
//! in TTHeader as the remaining budget, hop by hop, and the server two hops
//! down refuses or cancels work once it is gone.

mod resilience;

use std::time::Duration;

use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use weft::core::{Code, Context, Request, Status};
use weft_interop::{EchoHandler, EchoRequest, EchoSlowArgsSend};
use weft_middleware::{DeadlineLayer, FaultConfig, FaultLayer, TimeoutLayer};

use resilience::{
    connect, connect_without_timeout, serve, slow_request, until, EchoConn, ProbeLayer,
};

/// Server A: spends `work` on its own, then calls B's `slow` (1 s) with the
/// context of the call it serves, as a handler does with `cx.child`.
async fn serve_front(b: EchoConn, work: Duration) -> weft::core::ServerHandle {
    let handler = service_fn(move |req: Request<EchoRequest>| {
        let b = b.clone();
        async move {
            tokio::time::sleep(work).await;
            let cx = req.cx.child("Echo", "slow");
            let payload = match req.message {
                EchoRequest::Slow(EchoSlowArgsSend { payload, .. }) => payload,
                _ => return Err(Status::invalid_argument("front serves slow only")),
            };
            b.oneshot(Request::new(
                cx,
                EchoRequest::Slow(EchoSlowArgsSend {
                    payload,
                    millis: 1000,
                }),
            ))
            .await
        }
    });
    serve(
        ServiceBuilder::new()
            .layer(DeadlineLayer::new())
            .service(handler),
    )
    .await
}

/// client → A → B with 150 ms: A uses 40 ms, so B's handler starts with
/// about 110 ms left and is dropped when they are gone, not after its 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_two_hops_down_cancels_the_handler() {
    let b_probe = ProbeLayer::default();
    let b = serve(
        ServiceBuilder::new()
            .layer(DeadlineLayer::new())
            .layer(b_probe.clone())
            .service(EchoHandler::default()),
    )
    .await;
    let a = serve_front(connect(b.local_addr()), Duration::from_millis(40)).await;
    let client = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(150)))
        .service(connect(a.local_addr()));

    let start = Instant::now();
    let err = client
        .oneshot(slow_request(Context::default(), 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(start.elapsed() < Duration::from_millis(300));

    let stats = &b_probe.0;
    until("B's handler ends", || {
        stats.completed() + stats.dropped() == 1
    })
    .await;
    assert_eq!(stats.calls(), 1);
    assert_eq!(stats.completed(), 0, "B finished work nobody waits for");
    assert_eq!(stats.dropped(), 1);
    let left = stats.remaining.lock().unwrap()[0].expect("B got no deadline");
    assert!(
        left <= Duration::from_millis(110) && left >= Duration::from_millis(50),
        "B's budget {left:?}"
    );
    let dropped_after = stats.dropped_after.lock().unwrap()[0];
    assert!(
        dropped_after <= left + Duration::from_millis(20),
        "B's handler ran {dropped_after:?} with {left:?} left"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The same chain where B queues each request for 200 ms before its
/// deadline check (a fault-injected delay standing for a backlog): by then
/// the 150 ms budget is gone, and B refuses without calling the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_two_hops_down_refuses_expired_work() {
    let outer = ProbeLayer::default();
    let handler = ProbeLayer::default();
    let b = serve(
        ServiceBuilder::new()
            .layer(outer.clone())
            .layer(FaultLayer::new(
                FaultConfig::none().delay(1.0, Duration::from_millis(200)),
            ))
            .layer(DeadlineLayer::new())
            .layer(handler.clone())
            .service(EchoHandler::default()),
    )
    .await;
    let a = serve_front(connect(b.local_addr()), Duration::ZERO).await;
    let mut cx = Context::default();
    cx.set_timeout(Duration::from_millis(150));
    let err = connect(a.local_addr())
        .oneshot(slow_request(cx, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);

    until("B answers", || outer.0.codes.lock().unwrap().len() == 1).await;
    assert_eq!(outer.0.calls(), 1);
    assert_eq!(
        outer.0.codes.lock().unwrap().as_slice(),
        &[Some(Code::DeadlineExceeded)]
    );
    assert_eq!(handler.0.calls(), 0, "B's handler ran past the deadline");
    a.shutdown().await;
    b.shutdown().await;
}

/// Without a deadline anywhere (clients without their default timeout),
/// the same chain completes and no deadline reaches the last hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_deadline_no_cancellation() {
    let b_probe = ProbeLayer::default();
    let b = serve(
        ServiceBuilder::new()
            .layer(DeadlineLayer::new())
            .layer(b_probe.clone())
            .service(EchoHandler::default()),
    )
    .await;
    let a = serve_front(connect_without_timeout(b.local_addr()), Duration::ZERO).await;
    connect_without_timeout(a.local_addr())
        .oneshot(slow_request(Context::default(), 0))
        .await
        .unwrap();
    assert_eq!(b_probe.0.completed(), 1);
    assert_eq!(b_probe.0.remaining.lock().unwrap()[0], None);
    a.shutdown().await;
    b.shutdown().await;
}

/// A configured timeout too large for the clock is no deadline, not a
/// panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_timeout_is_no_deadline() {
    let b = serve(EchoHandler::default()).await;
    let client = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::MAX))
        .service(connect_without_timeout(b.local_addr()));
    client
        .oneshot(slow_request(Context::default(), 0))
        .await
        .unwrap();
    b.shutdown().await;
}
