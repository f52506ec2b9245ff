use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use tower::Service;

use super::*;
use std::sync::atomic::AtomicUsize;
use tower::ServiceExt;
use weft_core::Code;

/// A backend with `capacity` workers: latency grows with queueing.
#[derive(Clone)]
struct Backend {
    running: Arc<AtomicUsize>,
    capacity: usize,
}

impl Service<u32> for Backend {
    type Response = ();
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;
    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: u32) -> Self::Future {
        let running = self.running.clone();
        let capacity = self.capacity;
        Box::pin(async move {
            let n = running.fetch_add(1, Ordering::SeqCst) + 1;
            let factor = (n as f64 / capacity as f64).max(1.0);
            tokio::time::sleep(Duration::from_secs_f64(0.010 * factor)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn converges_under_overload_and_sheds_the_excess() {
    let backend = Backend {
        running: Arc::default(),
        capacity: 8,
    };
    let limited = AdaptiveLimit::new(
        backend,
        AdaptiveConfig {
            initial: 100,
            ..AdaptiveConfig::default()
        },
    );
    // 200 callers in a closed loop: four times what the backend takes.
    let mut limits = Vec::new();
    let shed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let svc = limited.clone();
        let shed = shed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                match svc.clone().oneshot(0).await {
                    Ok(()) => {}
                    Err(e) => {
                        assert_eq!(e.code(), Code::ResourceExhausted);
                        shed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        limits.push(limited.limit());
    }
    for t in tasks {
        t.await.unwrap();
    }
    let settled = &limits[limits.len() / 2..];
    let (lo, hi) = (
        *settled.iter().min().unwrap(),
        *settled.iter().max().unwrap(),
    );
    assert!(shed.load(Ordering::Relaxed) > 0, "overload was never shed");
    // From 100 down to the neighbourhood of the backend's capacity, and stable there.
    assert!(hi <= 40 && lo >= 4, "limit did not converge: {limits:?}");
}

// ===== overload signals (issue #10) =====

use crate::timeout::script::{ms, Scripted, Step};
use weft_core::{Context, Request};

fn req() -> Request<u32> {
    Request::new(Context::new("svc", "get"), 0)
}

async fn after_calls(inner: Scripted, drop_them: bool) -> usize {
    let limited = AdaptiveLimit::new(inner, AdaptiveConfig::default());
    assert_eq!(limited.limit(), 20);
    for _ in 0..200 {
        let mut fut = limited.clone().oneshot(req());
        if drop_them {
            // Abandoned by a total timeout or a caller that went away.
            assert!(futures::poll!(&mut fut).is_pending());
            tokio::time::advance(ms(50)).await;
            drop(fut);
        } else {
            assert!(fut.await.is_err());
        }
    }
    limited.limit()
}

#[tokio::test(start_paused = true)]
async fn timeouts_drive_the_limit_down() {
    let timeout = Step::Err(ms(50), Status::deadline_exceeded("attempt timed out"));
    let limit = after_calls(Scripted::new([]).then_always(timeout), false).await;
    assert!(limit <= 5, "limit {limit} after 200 timeouts");
}

#[tokio::test(start_paused = true)]
async fn calls_dropped_before_they_end_drive_the_limit_down() {
    let hang = Step::Ok(Duration::from_secs(3600));
    let inner = Scripted::new([]).then_always(hang);
    let limit = after_calls(inner.clone(), true).await;
    assert_eq!(inner.cancelled(), 200);
    assert!(limit <= 5, "limit {limit} after 200 abandoned calls");
}

#[tokio::test(start_paused = true)]
async fn sheds_from_inner_layers_drive_the_limit_down() {
    let shed = Step::Err(ms(1), crate::limit::shed("inner limit"));
    let limit = after_calls(Scripted::new([]).then_always(shed), false).await;
    assert!(limit <= 5, "limit {limit} after 200 sheds");
}

#[tokio::test(start_paused = true)]
async fn timeouts_among_fast_answers_do_not_let_it_grow() {
    // Every other call answers at once, the rest time out: successes
    // alone would look like an idle service and raise the limit.
    let steps = (0..200).map(|i| {
        if i % 2 == 0 {
            Step::Ok(ms(1))
        } else {
            Step::Err(ms(50), Status::deadline_exceeded("attempt timed out"))
        }
    });
    let limited = AdaptiveLimit::new(Scripted::new(steps), AdaptiveConfig::default());
    for _ in 0..200 {
        let _ = limited.clone().oneshot(req()).await;
    }
    assert!(limited.limit() < 20, "limit {}", limited.limit());
}

#[tokio::test(start_paused = true)]
async fn caller_mistakes_are_no_overload_signal() {
    let bad = Step::Err(ms(1), Status::invalid_argument("no"));
    let limit = after_calls(Scripted::new([]).then_always(bad), false).await;
    assert_eq!(limit, 20);
}
