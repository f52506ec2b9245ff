//! "Not processed" does not leak across hops: a handler that did its work
//! and then got a `NotSent` error from its own downstream call returns it
//! with `?`; the caller must see "may have been processed", so a retry
//! policy with no idempotent method never runs the handler twice. Only the
//! server's own refusals (a shed call) travel as "not processed".

mod resilience;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tower::{service_fn, ServiceBuilder, ServiceExt};
use weft::core::{Code, Context, Delivery, Instance, Request, StaticDiscover, Status};
use weft_interop::{EchoHandler, EchoRequest};
use weft_middleware::{
    limit::ConcurrencyLimitLayer, Backoff, ClientStack, RetryBudget, RetryLayer, RetryPolicy,
};

use resilience::{connect, echo_request, serve, slow_request, until};

/// A port nothing listens on: connecting to it is refused, NotSent.
fn dead_address() -> weft::core::Address {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    weft::core::Address::Tcp(addr)
}

fn retrying_client(
    servers: &[&weft::core::ServerHandle],
) -> impl Clone
       + tower::Service<
    Request<EchoRequest>,
    Response = weft::core::Response<weft_interop::EchoResponse>,
    Error = Status,
    Future = impl Send,
> {
    let discover = StaticDiscover::from_addresses(servers.iter().map(|s| s.local_addr().clone()));
    ClientStack::new()
        .retry(Some(
            // No method is idempotent: only what was not processed is retried.
            RetryLayer::new(
                RetryPolicy::default()
                    .max_attempts(3)
                    .backoff(Backoff::fixed(Duration::from_millis(1))),
            )
            .budget(RetryBudget::unlimited()),
        ))
        .build(&discover, "Echo", |inst: &Instance| connect(&inst.address))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_not_sent_error_is_not_retried_upstream() {
    let runs = Arc::new(AtomicUsize::new(0));
    let downstream = connect(&dead_address());
    let front = {
        let runs = runs.clone();
        service_fn(move |req: Request<EchoRequest>| {
            let (runs, downstream) = (runs.clone(), downstream.clone());
            async move {
                // The side effect, then a downstream call that fails before
                // it is sent.
                runs.fetch_add(1, Ordering::SeqCst);
                let cx = req.cx.child("Echo", "echo");
                let err = downstream
                    .oneshot(echo_request(cx))
                    .await
                    .expect_err("nothing listens downstream");
                assert!(err.is_not_sent(), "the downstream call was never sent");
                Err::<weft::core::Response<weft_interop::EchoResponse>, _>(err)
            }
        })
    };
    let a = serve(front.clone()).await;
    let b = serve(front).await;
    let client = retrying_client(&[&a, &b]);

    let mut ran_and_failed = 0;
    for i in 0..20 {
        let before = runs.load(Ordering::SeqCst);
        let err = client
            .clone()
            .oneshot(echo_request(Context::new("Echo", "echo")))
            .await
            .expect_err("the handler fails");
        let ran = runs.load(Ordering::SeqCst) - before;
        assert!(ran <= 1, "call {i}: the handler ran {ran} times");
        match err.delivery() {
            // The handler ran: the caller must not think otherwise.
            Delivery::MaybeSent => {
                assert_eq!((err.code(), ran), (Code::Unavailable, 1), "call {i}: {err}");
                ran_and_failed += 1;
            }
            // The caller's breakers opened after repeated failures: the
            // call was refused on the client, before any handler ran.
            Delivery::NotSent => assert_eq!(ran, 0, "call {i}: {err}"),
        }
    }
    assert!(
        ran_and_failed >= 10,
        "{ran_and_failed} calls reached a handler"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The server's own refusal (a shed call) still travels as "not
/// processed", and the caller's retry goes elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shed_call_is_still_retried_elsewhere() {
    let busy_handler = EchoHandler::default();
    let busy = serve(
        ServiceBuilder::new()
            .layer(ConcurrencyLimitLayer::new(1))
            .service(busy_handler.clone()),
    )
    .await;
    let free = serve(EchoHandler::default()).await;
    // Hold the busy server's only slot.
    let hold = tokio::spawn(
        connect(busy.local_addr()).oneshot(slow_request(Context::new("Echo", "slow"), 1_000)),
    );
    until("the slot is held", || {
        busy_handler.calls.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let direct = connect(busy.local_addr())
        .oneshot(echo_request(Context::new("Echo", "echo")))
        .await
        .expect_err("shed");
    assert_eq!(direct.code(), Code::ResourceExhausted);
    assert!(direct.is_not_sent(), "a shed call was not processed");

    let client = retrying_client(&[&busy, &free]);
    for _ in 0..10 {
        client
            .clone()
            .oneshot(echo_request(Context::new("Echo", "echo")))
            .await
            .expect("shed calls are retried on the free server");
    }
    hold.await.unwrap().unwrap();
    busy.shutdown().await;
    free.shutdown().await;
}
