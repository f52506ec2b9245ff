use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt};
use weft_core::{Code, Context, Delivery, Request, Status};

use super::*;
use crate::{
    timeout::script::{ms, Scripted, Step},
    TimeoutLayer,
};

fn req(method: &'static str) -> Request<u32> {
    Request::new(Context::new("svc", method), 0)
}

fn unavailable() -> Step {
    Step::Err(Duration::ZERO, Status::unavailable("down"))
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy::default().backoff(Backoff::exponential(ms(10), ms(100)))
}

#[tokio::test(start_paused = true)]
async fn retries_idempotent_calls_with_backoff_and_marks_attempts() {
    let inner = Scripted::new([unavailable(), unavailable(), Step::Ok(ms(1))]);
    let svc = RetryLayer::new(fast_policy())
        .idempotent(["get"])
        .layer(inner.clone());
    let resp = svc.oneshot(req("get")).await.unwrap();
    assert_eq!(resp.message, 3);
    let seen = inner.seen.lock().clone();
    let marks: Vec<_> = seen.iter().map(|s| s.previous_attempts.clone()).collect();
    assert_eq!(marks, [None, Some("1".into()), Some("2".into())]);
    // Backoff 10 ms then 20 ms, each shortened by up to half.
    let gap1 = seen[1].at - seen[0].at;
    let gap2 = seen[2].at - seen[1].at;
    assert!(gap1 >= ms(5) && gap1 <= ms(10), "{gap1:?}");
    assert!(gap2 >= ms(10) && gap2 <= ms(20), "{gap2:?}");
}

#[tokio::test(start_paused = true)]
async fn stops_at_max_attempts_with_the_last_error() {
    let inner = Scripted::new([]).then_always(unavailable());
    let svc = RetryLayer::new(fast_policy().max_attempts(4))
        .idempotent(["get"])
        .layer(inner.clone());
    let err = svc.oneshot(req("get")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(inner.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn answers_are_not_retried() {
    let inner = Scripted::new([Step::Err(Duration::ZERO, Status::invalid_argument("no"))]);
    let svc = RetryLayer::new(fast_policy())
        .idempotent(["get"])
        .layer(inner.clone());
    let err = svc.oneshot(req("get")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(inner.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_retried_only_when_not_sent() {
    // May have reached the server: not retried.
    let inner = Scripted::new([unavailable()]);
    let svc = RetryLayer::new(fast_policy())
        .idempotent(["get"])
        .layer(inner.clone());
    assert!(svc.oneshot(req("put")).await.is_err());
    assert_eq!(inner.calls(), 1);

    // Certainly not sent: retried.
    let refused = Status::unavailable("connection refused").with_delivery(Delivery::NotSent);
    let inner = Scripted::new([Step::Err(Duration::ZERO, refused), Step::Ok(ms(1))]);
    let svc = RetryLayer::new(fast_policy()).layer(inner.clone());
    assert_eq!(svc.oneshot(req("put")).await.unwrap().message, 2);
    assert_eq!(inner.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn idempotency_predicate() {
    let inner = Scripted::new([unavailable(), Step::Ok(ms(1))]);
    let svc = RetryLayer::new(fast_policy())
        .idempotent_if(|cx| cx.method.starts_with("get"))
        .layer(inner.clone());
    assert!(svc.oneshot(req("get_user")).await.is_ok());
    assert_eq!(inner.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_are_retried_only_within_the_total_deadline() {
    let inner = Scripted::new([]).then_always(Step::Ok(Duration::from_secs(1)));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(ms(100)))
        .layer(
            RetryLayer::new(fast_policy().max_attempts(10))
                .idempotent(["get"])
                .budget(RetryBudget::unlimited()),
        )
        .layer(TimeoutLayer::new(ms(40)))
        .service(inner.clone());
    let start = Instant::now();
    let err = svc.oneshot(req("get")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(start.elapsed() <= ms(100));
    let seen = inner.seen.lock().clone();
    // 0–40, then 45–85 or so, then one more cut short by the total deadline.
    assert!((2..=3).contains(&seen.len()), "{} attempts", seen.len());
    for s in &seen {
        assert!(s.deadline.unwrap() <= start + ms(100));
    }
    assert_eq!(inner.cancelled(), seen.len());

    // Not idempotent: the timed-out attempt may have reached the server.
    let inner = Scripted::new([]).then_always(Step::Ok(Duration::from_secs(1)));
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(ms(100)))
        .layer(RetryLayer::new(fast_policy().max_attempts(10)))
        .layer(TimeoutLayer::new(ms(40)))
        .service(inner.clone());
    let err = svc.oneshot(req("put")).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(inner.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_caps_retries_under_a_failing_backend() {
    let inner = Scripted::new([]).then_always(unavailable());
    let layer = RetryLayer::new(fast_policy()).idempotent(["get"]);
    let calls = 2000;
    for _ in 0..calls {
        let _ = layer.layer(inner.clone()).oneshot(req("get")).await;
    }
    let ratio = inner.calls() as f64 / calls as f64;
    assert!(ratio <= 1.1, "{ratio} attempts per call");
    assert!(ratio > 1.05, "the budget should still allow ~10 %: {ratio}");
}

#[tokio::test(start_paused = true)]
async fn backup_request_wins_and_the_loser_is_cancelled() {
    let inner = Scripted::new([Step::Ok(ms(200)), Step::Ok(ms(5))]);
    let svc = RetryLayer::new(fast_policy().hedge(HedgeDelay::fixed(ms(20))))
        .idempotent(["get"])
        .budget(RetryBudget::unlimited())
        .layer(inner.clone());
    let start = Instant::now();
    let resp = svc.oneshot(req("get")).await.unwrap();
    assert_eq!(resp.message, 2);
    assert_eq!(start.elapsed(), ms(25));
    assert_eq!(inner.cancelled(), 1);
    let seen = inner.seen.lock().clone();
    assert_eq!(seen[1].at - seen[0].at, ms(20));
    assert_eq!(seen[1].previous_attempts.as_deref(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn no_backup_for_non_idempotent_calls_or_without_budget() {
    let inner = Scripted::new([Step::Ok(ms(200))]);
    let svc = RetryLayer::new(fast_policy().hedge(HedgeDelay::fixed(ms(20))))
        .budget(RetryBudget::unlimited())
        .layer(inner.clone());
    svc.oneshot(req("put")).await.unwrap();
    assert_eq!(inner.calls(), 1);

    let inner = Scripted::new([Step::Ok(ms(200))]);
    let svc = RetryLayer::new(fast_policy().hedge(HedgeDelay::fixed(ms(20))))
        .idempotent(["get"])
        .budget(RetryBudget::new(Duration::from_secs(10), 0, 0.0))
        .layer(inner.clone());
    svc.oneshot(req("get")).await.unwrap();
    assert_eq!(inner.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn first_attempt_wins_if_it_answers_before_the_backup() {
    let inner = Scripted::new([Step::Ok(ms(30)), Step::Ok(ms(50))]);
    let svc = RetryLayer::new(fast_policy().hedge(HedgeDelay::fixed(ms(20))))
        .idempotent(["get"])
        .budget(RetryBudget::unlimited())
        .layer(inner.clone());
    let resp = svc.oneshot(req("get")).await.unwrap();
    assert_eq!(resp.message, 1);
    assert_eq!(inner.calls(), 2);
    assert_eq!(inner.cancelled(), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_backup_waits_for_the_first_attempt() {
    let inner = Scripted::new([Step::Ok(ms(100)), unavailable()]);
    let svc = RetryLayer::new(
        fast_policy()
            .max_attempts(2)
            .hedge(HedgeDelay::fixed(ms(20))),
    )
    .idempotent(["get"])
    .budget(RetryBudget::unlimited())
    .layer(inner.clone());
    let start = Instant::now();
    assert_eq!(svc.oneshot(req("get")).await.unwrap().message, 1);
    assert_eq!(start.elapsed(), ms(100));
}

#[tokio::test(start_paused = true)]
async fn percentile_hedge_follows_recent_latency() {
    let inner = Scripted::new([]).then_always(Step::Ok(ms(10)));
    let layer = RetryLayer::new(fast_policy().hedge(HedgeDelay::percentile(95.0, ms(100))))
        .idempotent(["get"])
        .budget(RetryBudget::unlimited());
    for _ in 0..50 {
        layer
            .layer(inner.clone())
            .oneshot(req("get"))
            .await
            .unwrap();
    }
    assert_eq!(inner.calls(), 50);
    let slow = Scripted::new([Step::Ok(ms(500)), Step::Ok(ms(10))]);
    // The tracker lives in the layer: reuse it with a new inner service.
    let start = Instant::now();
    layer.layer(slow.clone()).oneshot(req("get")).await.unwrap();
    assert_eq!(start.elapsed(), ms(20));
    assert_eq!(slow.cancelled(), 1);
}

/// A request message that counts its copies.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

/// Refuses its first `refusals` calls as not sent, then answers; hands
/// the request back with each refusal when `hand_back`.
#[derive(Clone)]
struct Refuses {
    refusals: usize,
    hand_back: bool,
    calls: Arc<AtomicUsize>,
}

impl tower::Service<Request<Counted>> for Refuses {
    type Response = weft_core::Response<()>;
    type Error = Status;
    type Future = std::future::Ready<Result<Self::Response, Status>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Status>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Counted>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.refusals {
            let refused =
                Status::unavailable("connection refused").with_delivery(Delivery::NotSent);
            let refused = if self.hand_back {
                refused.with_unsent(req)
            } else {
                refused
            };
            return std::future::ready(Err(refused));
        }
        std::future::ready(Ok(weft_core::Response::new(req.cx, ())))
    }
}

fn counted(method: &'static str) -> (Request<Counted>, Arc<AtomicUsize>) {
    let copies = Arc::new(AtomicUsize::new(0));
    (
        Request::new(Context::new("svc", method), Counted(copies.clone())),
        copies,
    )
}

#[tokio::test(start_paused = true)]
async fn a_call_that_is_not_idempotent_is_sent_again_without_a_copy() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = Refuses {
        refusals: 2,
        hand_back: true,
        calls: calls.clone(),
    };
    let svc = RetryLayer::new(fast_policy().max_attempts(3)).layer(inner);
    let (req, copies) = counted("add");
    svc.oneshot(req).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two refusals, then the answer"
    );
    assert_eq!(
        copies.load(Ordering::SeqCst),
        0,
        "each refusal handed the request back: nothing to copy"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_call_is_copied_for_every_attempt_but_the_last() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = Refuses {
        refusals: 2,
        hand_back: false,
        calls: calls.clone(),
    };
    let svc = RetryLayer::new(fast_policy().max_attempts(3))
        .idempotent(["get"])
        .layer(inner);
    let (req, copies) = counted("get");
    svc.oneshot(req).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The kept copy, and the second attempt's; the third takes the copy.
    assert_eq!(copies.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unsent_refusal_that_keeps_its_request_ends_a_call_that_is_not_idempotent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = Refuses {
        refusals: 2,
        hand_back: false,
        calls: calls.clone(),
    };
    let svc = RetryLayer::new(fast_policy().max_attempts(3)).layer(inner);
    let (req, copies) = counted("add");
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(err.is_not_sent(), "{err:?}");
    // Nothing to send again, and no copy made to send.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(copies.load(Ordering::SeqCst), 0);
}
