use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use weft_core::{Code, Context, Delivery, Request, Status};

use super::*;
use crate::timeout::script::{ms, Scripted, Step};

fn req(method: &'static str) -> Request<u32> {
    Request::new(Context::new("svc", method), 0)
}

#[tokio::test(start_paused = true)]
async fn error_with_probability_one_never_calls_inner() {
    let inner = Scripted::new([]);
    let status = Status::unavailable("injected").with_delivery(Delivery::NotSent);
    let svc = FaultLayer::new(FaultConfig::none().error(1.0, status)).layer(inner.clone());
    let err = svc.oneshot(req("get")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.is_not_sent());
    assert_eq!(inner.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn delay_then_call() {
    let inner = Scripted::new([Step::Ok(ms(5))]);
    let svc = FaultLayer::new(FaultConfig::none().delay(1.0, ms(200))).layer(inner.clone());
    let start = Instant::now();
    svc.oneshot(req("get")).await.unwrap();
    assert_eq!(start.elapsed(), ms(205));
    assert_eq!(inner.seen.lock()[0].at, start + ms(200));
}

#[tokio::test(start_paused = true)]
async fn abort_starts_then_drops_the_call() {
    let inner = Scripted::new([Step::Ok(ms(50))]);
    let svc = FaultLayer::new(FaultConfig::none().abort(1.0)).layer(inner.clone());
    let err = svc.oneshot(req("get")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(!err.is_not_sent());
    assert_eq!(inner.calls(), 1);
    assert_eq!(inner.cancelled(), 1);
}

#[tokio::test(start_paused = true)]
async fn per_method_and_probability_zero() {
    let inner = Scripted::new([]).then_always(Step::Ok(Duration::ZERO));
    let faults = PerMethod::new(FaultConfig::none().error(0.0, Status::internal("never"))).with(
        "put",
        FaultConfig::none().error(1.0, Status::internal("always")),
    );
    let layer = FaultLayer::new(faults);
    for _ in 0..100 {
        layer
            .layer(inner.clone())
            .oneshot(req("get"))
            .await
            .unwrap();
    }
    let err = layer.layer(inner.clone()).oneshot(req("put")).await;
    assert_eq!(err.unwrap_err().message(), "always");
    assert_eq!(inner.calls(), 100);
}

#[tokio::test(start_paused = true)]
async fn half_the_calls_fail_roughly() {
    let inner = Scripted::new([]).then_always(Step::Ok(Duration::ZERO));
    let svc = FaultLayer::new(FaultConfig::none().error(0.5, Status::internal("x"))).layer(inner);
    let mut failed = 0;
    for _ in 0..2000 {
        if svc.clone().oneshot(req("get")).await.is_err() {
            failed += 1;
        }
    }
    assert!((800..1200).contains(&failed), "{failed} of 2000 failed");
}
