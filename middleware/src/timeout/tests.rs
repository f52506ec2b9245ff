use std::error::Error as _;

use tower::{Layer, ServiceExt};
use weft_core::{Code, Context};

use super::{
    script::{ms, Scripted, Step},
    *,
};

fn req(method: &'static str) -> Request<u32> {
    Request::new(Context::new("svc", method), 0)
}

fn is_elapsed(s: &Status) -> bool {
    s.source()
        .is_some_and(|e| e.downcast_ref::<Elapsed>().is_some())
}

#[tokio::test(start_paused = true)]
async fn timeout_fires_cancels_inner_and_sends_the_tighter_deadline() {
    let inner = Scripted::new([Step::Ok(ms(500))]);
    let svc = TimeoutLayer::new(ms(100)).layer(inner.clone());
    let start = Instant::now();
    let err = svc.oneshot(req("get")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(!err.is_not_sent());
    assert!(is_elapsed(&err));
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(inner.cancelled(), 1);
    assert_eq!(inner.seen.lock()[0].deadline, Some(start + ms(100)));
}

#[tokio::test(start_paused = true)]
async fn timeout_never_loosens_an_earlier_deadline() {
    let inner = Scripted::new([Step::Ok(ms(10))]);
    let svc = TimeoutLayer::new(ms(100)).layer(inner.clone());
    let mut r = req("get");
    r.cx.set_timeout(ms(50));
    let want = r.cx.deadline;
    svc.oneshot(r).await.unwrap();
    assert_eq!(inner.seen.lock()[0].deadline, want);
}

#[tokio::test(start_paused = true)]
async fn timeout_per_method_and_passthrough() {
    let inner = Scripted::new([Step::Ok(ms(300)), Step::Ok(ms(300))]);
    let layer = TimeoutLayer::per_method(PerMethod::new(Some(ms(100))).with("scan", None));
    let err = layer
        .layer(inner.clone())
        .oneshot(req("get"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let ok = layer.layer(inner.clone()).oneshot(req("scan")).await;
    assert_eq!(ok.unwrap().message, 2);
    assert_eq!(inner.seen.lock()[1].deadline, None);
}

#[tokio::test(start_paused = true)]
async fn timeout_refuses_an_expired_call_as_not_sent() {
    let inner = Scripted::new([]);
    let svc = TimeoutLayer::new(ms(100)).layer(inner.clone());
    let mut r = req("get");
    r.cx.set_timeout(ms(5));
    tokio::time::advance(ms(10)).await;
    let err = svc.oneshot(r).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(err.is_not_sent());
    assert_eq!(inner.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_refuses_expired_requests_without_calling_the_handler() {
    let handler = Scripted::new([]);
    let svc = DeadlineLayer::new().layer(handler.clone());
    let mut r = req("get");
    r.cx.set_timeout(ms(5));
    tokio::time::advance(ms(6)).await;
    let err = svc.oneshot(r).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(handler.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_cancels_a_handler_that_outlives_it() {
    let handler = Scripted::new([Step::Ok(ms(500)), Step::Ok(ms(10))]);
    let svc = DeadlineLayer::new().layer(handler.clone());
    let start = Instant::now();
    let mut r = req("get");
    r.cx.set_timeout(ms(80));
    let err = svc.clone().oneshot(r).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(start.elapsed(), ms(80));
    // Dropped when the deadline passed, not when the caller drops the future.
    assert_eq!(handler.cancelled(), 1);

    // No deadline: the handler runs to completion.
    assert!(svc.oneshot(req("get")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn deadline_default_timeout_for_requests_without_one() {
    let handler = Scripted::new([Step::Ok(ms(500))]);
    let svc = DeadlineLayer::default_timeouts(PerMethod::new(Some(ms(50)))).layer(handler);
    let start = Instant::now();
    assert!(svc.oneshot(req("get")).await.is_err());
    assert_eq!(start.elapsed(), ms(50));
}
