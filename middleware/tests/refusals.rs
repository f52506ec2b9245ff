//! Refusals carry a typed source, so a caller tells a shed, an open breaker
//! and a service without instances apart without parsing messages.

use std::{error::Error as _, future::Future};

use tower::{service_fn, Layer, Service, ServiceExt};
use weft::core::{Code, Context, Request, StaticDiscover, Status};
use weft_middleware::{
    balance::{Balance, BalanceConfig},
    breaker::{Breaker, BreakerConfig, CircuitBreakerLayer},
    limit::{AdaptiveConfig, AdaptiveLimit, ConcurrencyLimit, RateLimit},
};

fn req() -> Request<u32> {
    Request::new(Context::new("svc", "get"), 0)
}

/// A call that never ends, to hold a limit's slot.
fn hang(_: Request<u32>) -> impl Future<Output = Result<u32, Status>> {
    std::future::pending()
}

fn source_is<E: std::error::Error + 'static>(s: &Status) -> bool {
    s.source().is_some_and(|e| e.downcast_ref::<E>().is_some())
}

/// Hold one call on `svc`, then return the refusal of the next.
async fn second_call<S>(mut svc: S) -> Status
where
    S: Service<Request<u32>, Error = Status>,
{
    let held = svc.ready().await.unwrap().call(req());
    let err = match svc.ready().await.unwrap().call(req()).await {
        Err(e) => e,
        Ok(_) => panic!("the second call was admitted"),
    };
    drop(held);
    err
}

#[tokio::test(start_paused = true)]
async fn every_limit_sheds_with_an_overloaded_source() {
    let adaptive = AdaptiveConfig {
        initial: 1,
        ..AdaptiveConfig::default()
    };
    let sheds = [
        second_call(ConcurrencyLimit::new(service_fn(hang), 1)).await,
        second_call(RateLimit::new(service_fn(hang), 0.001, 1)).await,
        second_call(AdaptiveLimit::new(service_fn(hang), adaptive)).await,
    ];
    for e in sheds {
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(e.is_not_sent());
        assert!(source_is::<weft_middleware::limit::Overloaded>(&e), "{e:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_refuses_with_a_breaker_open_source() {
    let b = Breaker::new(BreakerConfig {
        min_samples: 1,
        ..BreakerConfig::default()
    });
    let p = b.try_acquire().unwrap();
    b.record(p, false);
    let e = b.try_acquire().unwrap_err();
    assert!(
        source_is::<weft_middleware::breaker::BreakerOpen>(&e),
        "{e:?}"
    );

    let failing =
        service_fn(|_: Request<u32>| async { Err::<u32, _>(Status::unavailable("down")) });
    let svc = CircuitBreakerLayer::new(BreakerConfig {
        min_samples: 1,
        ..BreakerConfig::default()
    })
    .layer(failing);
    let first = svc.clone().oneshot(req()).await.unwrap_err();
    assert!(!source_is::<weft_middleware::breaker::BreakerOpen>(&first));
    let e = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.is_not_sent());
    assert!(
        source_is::<weft_middleware::breaker::BreakerOpen>(&e),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_instance_refuses_with_a_no_instance_source() {
    let discover = StaticDiscover::new([]);
    let lb = Balance::new(
        &discover,
        "svc",
        |_: &weft::core::Instance| service_fn(hang),
        BalanceConfig::default(),
    )
    .unwrap();
    let e = lb.oneshot(req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.is_not_sent());
    assert!(
        source_is::<weft_middleware::balance::NoInstance>(&e),
        "{e:?}"
    );
}

// ===== over loopback sockets, through a real client and server =====

mod wire {
    use std::{sync::atomic::Ordering, time::Duration};

    use tower::ServiceExt;
    use weft::core::{
        Address, Code, ConnectionMode, Context, Instance, Request, ServerBuilder, ServerHandle,
        StaticDiscover, Status,
    };
    use weft::thrift::{Protocol, ThriftServerCodec, Transport};
    use weft_interop::{
        EchoAddArgsSend, EchoClient, EchoFailArgsSend, EchoHandler, EchoRequest, EchoResponse,
        EchoSlowArgsSend,
    };
    use weft_middleware::{
        balance::{BalanceConfig, NoInstance, Strategy},
        breaker::{BreakerConfig, BreakerOpen},
        limit::Overloaded,
        ClientStack, RetryLayer, ServerStack,
    };

    use super::source_is;

    /// An echo server behind the default server stack with at most
    /// `concurrency` calls handled at once.
    async fn server(handler: EchoHandler, concurrency: usize) -> ServerHandle {
        let builder = ServerBuilder::new();
        let limits = builder.limits_ref().clone();
        builder
            .serve(
                &"127.0.0.1:0".parse::<Address>().unwrap(),
                move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
                ServerStack::new()
                    .concurrency_limit(concurrency)
                    .build(handler),
            )
            .await
            .unwrap()
    }

    fn conn(addr: &Address) -> EchoClient {
        EchoClient::new(
            addr,
            Transport::TTHeader,
            Protocol::Binary,
            ConnectionMode::Multiplexed,
        )
    }

    fn call(method: &'static str, message: EchoRequest) -> Request<EchoRequest> {
        Request::new(Context::new("Echo", method), message)
    }

    fn add(a: i64) -> Request<EchoRequest> {
        call("add", EchoRequest::Add(EchoAddArgsSend { a, b: 1 }))
    }

    /// Wait (at most 10 s) until `f` holds.
    async fn until(what: &str, f: impl Fn() -> bool) {
        let start = tokio::time::Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_remote_shed_is_a_definite_refusal_that_a_retry_takes_elsewhere() {
        // `a` takes one call at a time and is busy with a slow one.
        let (ha, hb) = (EchoHandler::default(), EchoHandler::default());
        let (a, b) = (server(ha.clone(), 1).await, server(hb.clone(), 64).await);
        let busy = {
            let c = conn(a.local_addr());
            let slow = EchoSlowArgsSend {
                payload: weft_interop::sample_payload(8),
                millis: 5_000,
            };
            tokio::spawn(
                async move { c.inner.oneshot(call("slow", EchoRequest::Slow(slow))).await },
            )
        };
        until("the slow call running on a", || {
            ha.calls.load(Ordering::SeqCst) == 1
        })
        .await;

        // Straight to `a`: shed over the wire, as a refusal before any work
        // (safe to retry), told apart by code and delivery, not by message.
        let e: Status = conn(a.local_addr())
            .inner
            .oneshot(add(1))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(
            e.is_not_sent(),
            "a shed reaches the caller as not processed: {e:?}"
        );
        // The cause is the server's; no local limit shed it.
        assert!(!source_is::<Overloaded>(&e), "{e:?}");
        assert_eq!(ha.calls.load(Ordering::SeqCst), 1, "the shed add never ran");

        // Through the client stack over both, `add` not idempotent: every
        // pick of `a` is shed and retried on `b`, and each add runs once.
        let discover =
            StaticDiscover::from_addresses([a.local_addr().clone(), b.local_addr().clone()]);
        let client = ClientStack::new()
            .retry(Some(RetryLayer::default()))
            .balance(BalanceConfig {
                strategy: Strategy::RoundRobin,
                breaker: None,
                ..BalanceConfig::default()
            })
            .method_breaker(None)
            .build(&discover, "Echo", |i: &Instance| conn(&i.address).inner)
            .unwrap();
        for i in 0..10 {
            client.clone().oneshot(add(i)).await.expect("retried on b");
        }
        assert_eq!(
            hb.calls.load(Ordering::SeqCst),
            10,
            "each add ran once, on b"
        );
        assert_eq!(ha.calls.load(Ordering::SeqCst), 1, "no add ran on a");
        busy.abort();
        a.abort().await;
        b.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_breaker_and_no_instance_are_told_apart_by_their_source() {
        let h = EchoHandler::default();
        let s = server(h.clone(), 64).await;
        let discover = StaticDiscover::from_addresses([s.local_addr().clone()]);
        let client = ClientStack::new()
            .retry(None)
            .method_breaker(Some(BreakerConfig {
                min_samples: 1,
                consecutive_failures: Some(1),
                ..BreakerConfig::default()
            }))
            .balance(BalanceConfig {
                breaker: None,
                ..BalanceConfig::default()
            })
            .build(&discover, "Echo", |i: &Instance| conn(&i.address).inner)
            .unwrap();
        // An undeclared error from the server (code < 0: `Internal`) opens
        // the method breaker; the next call never leaves.
        let fail = || {
            call(
                "fail",
                EchoRequest::Fail(EchoFailArgsSend {
                    code: -1,
                    message: "boom".into(),
                }),
            )
        };
        let first = client.clone().oneshot(fail()).await.unwrap_err();
        assert!(!source_is::<BreakerOpen>(&first), "{first:?}");
        let e = client.clone().oneshot(fail()).await.unwrap_err();
        assert!(source_is::<BreakerOpen>(&e), "{e:?}");
        assert!(!source_is::<NoInstance>(&e) && !source_is::<Overloaded>(&e));
        assert!(e.is_not_sent(), "{e:?}");
        assert_eq!(
            h.calls.load(Ordering::SeqCst),
            1,
            "the refused call never ran"
        );

        let none = StaticDiscover::new([]);
        let empty = ClientStack::new()
            .build(&none, "Echo", |i: &Instance| conn(&i.address).inner)
            .unwrap();
        let e = empty.oneshot(add(1)).await.unwrap_err();
        assert!(source_is::<NoInstance>(&e), "{e:?}");
        assert!(!source_is::<BreakerOpen>(&e) && !source_is::<Overloaded>(&e));
        assert!(e.is_not_sent(), "{e:?}");
        s.shutdown().await;
    }
}
