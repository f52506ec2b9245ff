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
