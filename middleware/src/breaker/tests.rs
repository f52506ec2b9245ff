use std::sync::Arc;

use tower::Service;
use weft_core::Request;

use super::*;

fn cfg() -> BreakerConfig {
    BreakerConfig {
        window: Duration::from_secs(10),
        buckets: 10,
        min_samples: 10,
        error_rate: 0.5,
        open_for: Duration::from_secs(5),
        probes: 2,
        consecutive_failures: None,
    }
}

#[tokio::test(start_paused = true)]
async fn opens_on_error_rate_with_enough_samples_then_recovers() {
    let b = Breaker::new(cfg());
    // Nine failures are not enough samples.
    for _ in 0..9 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let p = b.try_acquire().unwrap();
    b.record(p, false);
    assert_eq!(b.state(), BreakerState::Open);
    let e = b.try_acquire().unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.is_not_sent());

    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(
        b.try_acquire().is_err(),
        "only `probes` calls go through half-open"
    );
    b.record(p1, true);
    b.record(p2, true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failures_in_a_row_open_it_despite_a_window_of_successes() {
    let b = Breaker::new(BreakerConfig {
        consecutive_failures: Some(5),
        ..cfg()
    });
    for _ in 0..1000 {
        let p = b.try_acquire().unwrap();
        b.record(p, true);
    }
    for _ in 0..4 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let p = b.try_acquire().unwrap();
    b.record(p, false);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_and_old_failures_age_out() {
    let b = Breaker::new(cfg());
    for _ in 0..10 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let p = b.try_acquire().unwrap();
    b.record(p, false);
    assert_eq!(b.state(), BreakerState::Open);

    // A fresh breaker: failures older than the window no longer count.
    let b = Breaker::new(cfg());
    for _ in 0..6 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..6 {
        let p = b.try_acquire().unwrap();
        b.record(p, true);
    }
    for _ in 0..4 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    // 4 errors out of 10 in the window: below 50 %.
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn closed_counting_is_exact_across_threads_without_a_lock() {
    // One bucket spanning an hour: no turnover while the test runs, so
    // every count must land.
    let b = Arc::new(Breaker::new(BreakerConfig {
        window: Duration::from_secs(3600),
        buckets: 1,
        min_samples: 100,
        error_rate: 0.5,
        consecutive_failures: None,
        ..BreakerConfig::default()
    }));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let p = b.try_acquire().unwrap();
                    b.record(p, true);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    // 39,999 errors of 79,999 calls is under half...
    for _ in 0..39_999 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // ...and the next one makes it half.
    let p = b.try_acquire().unwrap();
    b.record(p, false);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test]
async fn made_up_method_names_share_one_breaker_past_the_bound() {
    let inner = Scripted::new([]).then_always(Step::Ok(Duration::ZERO));
    let svc = CircuitBreakerLayer::new(cfg()).layer(inner);
    for i in 0..5_000 {
        let r = Request::new(Context::new("svc", format!("m{i}")), 0u32);
        svc.clone().oneshot(r).await.unwrap();
    }
    let held = svc.breakers.iter().count();
    let bound = 2 * crate::observe::DEFAULT_MAX_METHODS + 1;
    assert!(held <= bound, "{held} breakers for 5,000 method names");
    // A method of the first few keeps its own breaker.
    let first = svc.breaker("svc", "m0");
    assert!(Arc::ptr_eq(&first, &svc.breaker("svc", "m0")));
    assert!(!Arc::ptr_eq(&first, &svc.breaker("svc", "m1")));
    assert!(!Arc::ptr_eq(&first, &svc.breaker("other", "m0")));
}

// ===== abandoned probes (issue #10) =====

use crate::timeout::script::{ms, Scripted, Step};
use tower::{Layer, ServiceExt};
use weft_core::Context;

fn req() -> Request<u32> {
    Request::new(Context::new("svc", "get"), 0)
}

fn down() -> Step {
    Step::Err(Duration::ZERO, Status::unavailable("down"))
}

#[tokio::test(start_paused = true)]
async fn a_probe_permit_dropped_unrecorded_is_given_back() {
    let b = Breaker::new(cfg());
    for _ in 0..10 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    for _ in 0..2 {
        drop(b.try_acquire().unwrap());
    }
    let p1 = b.try_acquire().expect("dropped probes must be given back");
    let p2 = b.try_acquire().unwrap();
    b.record(p1, true);
    b.record(p2, true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_probe_of_an_earlier_half_open_spell_does_not_count() {
    let b = Breaker::new(cfg());
    for _ in 0..10 {
        let p = b.try_acquire().unwrap();
        b.record(p, false);
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let (p1, p2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
    b.record(p1, false);
    tokio::time::advance(Duration::from_secs(5)).await;
    let (q1, q2) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
    // The late answer of the first spell neither closes the breaker nor
    // frees a place in the second.
    b.record(p2, true);
    assert!(b.try_acquire().is_err());
    b.record(q1, true);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.record(q2, true);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn probes_whose_futures_are_dropped_do_not_keep_it_half_open() {
    // Ten failures open it; then two probes hang and are abandoned (a
    // lost backup request, a total timeout); then the method answers.
    let mut steps: Vec<Step> = (0..10).map(|_| down()).collect();
    steps.extend([
        Step::Ok(Duration::from_secs(3600)),
        Step::Ok(Duration::from_secs(3600)),
    ]);
    let inner = Scripted::new(steps).then_always(Step::Ok(ms(1)));
    let svc = CircuitBreakerLayer::new(cfg()).layer(inner.clone());
    for _ in 0..10 {
        assert!(svc.clone().oneshot(req()).await.is_err());
    }
    assert_eq!(svc.breaker("svc", "get").state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(5)).await;
    for _ in 0..2 {
        let mut fut = svc.clone().oneshot(req());
        // Started, then abandoned before it finishes.
        assert!(futures::poll!(&mut fut).is_pending());
        drop(fut);
    }
    assert_eq!(inner.cancelled(), 2);
    // Never polled at all: dropped straight after `call`.
    let mut s = svc.clone();
    drop(Service::call(&mut s, req()));
    svc.clone()
        .oneshot(req())
        .await
        .expect("admitted as a probe again");
    svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(svc.breaker("svc", "get").state(), BreakerState::Closed);
}
