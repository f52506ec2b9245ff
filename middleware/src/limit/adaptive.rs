use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use parking_lot::Mutex;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};
use weft_core::{Code, Status};

use super::concurrency::{try_take, Slot};

/// What the limit is multiplied by after an update window that held an
/// overload signal (a timeout, a shed, an abandoned call): the multiplicative
/// decrease of AIMD, and the `backoffRatio` default of Netflix's
/// concurrency-limits. One cut per window, not per signal, so that a burst of
/// timeouts that all began together cuts the limit once rather than to the
/// floor at a stroke.
pub const OVERLOAD_BACKOFF: f64 = 0.9;

/// Tuning of an [`AdaptiveLimit`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// The limit it starts from. Default 20.
    pub initial: usize,
    /// It never goes below this. Default 1.
    pub min: usize,
    /// Nor above this. Default 1000.
    pub max: usize,
    /// Weight of a new estimate in the limit (0..=1). Default 0.2.
    pub smoothing: f64,
    /// Outcomes per update: the limit changes once per this many calls
    /// (their answers' latency averaged, or cut if one signalled overload).
    /// Default 10.
    pub samples_per_update: u32,
    /// How long the no-load latency estimate is trusted before it is
    /// re-learned, so a permanently slower service is not starved. Default 30 s.
    pub probe_interval: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            initial: 20,
            min: 1,
            max: 1000,
            smoothing: 0.2,
            samples_per_update: 10,
            probe_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    no_load_rtt: Option<Duration>,
    no_load_since: Instant,
    // Latency of the window's answers, and how many there were.
    sum: Duration,
    answers: u32,
    // Outcomes in the window, answers and overload signals together.
    count: u32,
    overloaded: bool,
}

/// How a call under the limit ended, as the limit learns from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// An answer: its latency counts.
    Answered(Duration),
    /// Timed out, shed by an inner layer, or abandoned before it ended.
    Overloaded,
}

/// Which errors say the service is past what it can take: it ran out of
/// time (`DeadlineExceeded`) or an inner layer shed the call
/// (`ResourceExhausted`). Other errors are ignored, as before: they are often
/// refused before any work (a bad argument, a missing method), so their
/// latency says nothing of load.
fn is_overload(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::DeadlineExceeded | Code::ResourceExhausted
    )
}

#[derive(Debug)]
struct Shared {
    config: AdaptiveConfig,
    limit: AtomicUsize,
    in_flight: Arc<AtomicUsize>,
    state: Mutex<State>,
}

impl Shared {
    fn new(config: AdaptiveConfig) -> Shared {
        Shared {
            limit: AtomicUsize::new(config.initial),
            in_flight: Arc::default(),
            state: Mutex::new(State {
                limit: config.initial as f64,
                no_load_rtt: None,
                no_load_since: Instant::now(),
                sum: Duration::ZERO,
                answers: 0,
                count: 0,
                overloaded: false,
            }),
            config,
        }
    }

    /// Learn from one outcome. Outcomes are taken `samples_per_update` at a
    /// time; at the end of each window the limit is updated once:
    ///
    /// - if the window held an overload signal, limit × [`OVERLOAD_BACKOFF`]
    ///   (Netflix's windowed limits do the same with a dropped sample): a
    ///   service that times out or sheds is past its limit whatever the
    ///   latency of its other answers says;
    /// - otherwise the gradient update, limit × (no-load rtt / rtt) +
    ///   √limit of headroom, smoothed.
    ///
    /// Only answers are latency samples: the time a call took to time out
    /// or be abandoned is the caller's budget, not the service's latency.
    fn observe(&self, outcome: Outcome) {
        let c = &self.config;
        let mut s = self.state.lock();
        match outcome {
            Outcome::Answered(rtt) => {
                let now = Instant::now();
                if now.saturating_duration_since(s.no_load_since) > c.probe_interval {
                    s.no_load_rtt = None;
                }
                if s.no_load_rtt.is_none_or(|m| rtt < m) {
                    s.no_load_rtt = Some(rtt);
                    s.no_load_since = now;
                }
                s.sum += rtt;
                s.answers += 1;
            }
            Outcome::Overloaded => s.overloaded = true,
        }
        s.count += 1;
        if s.count < c.samples_per_update {
            return;
        }
        let target = if s.overloaded || s.answers == 0 {
            s.limit * OVERLOAD_BACKOFF
        } else {
            let avg = s.sum / s.answers;
            let no_load = s.no_load_rtt.unwrap_or(avg).as_secs_f64().max(1e-6);
            // Never more than double, never below half, per update: latency
            // noise must not swing the limit wildly.
            let gradient = (no_load / avg.as_secs_f64().max(1e-6)).clamp(0.5, 1.0);
            let target = s.limit * gradient + s.limit.sqrt();
            s.limit * (1.0 - c.smoothing) + target * c.smoothing
        };
        s.sum = Duration::ZERO;
        s.answers = 0;
        s.count = 0;
        s.overloaded = false;
        let next = target.clamp(c.min as f64, c.max as f64);
        s.limit = next;
        let rounded = next.round() as usize;
        if self.limit.swap(rounded, Ordering::Relaxed) != rounded {
            crate::observe::governance::adaptive_limit(rounded);
        }
    }
}

/// A concurrency limit that adapts to latency and to overload; calls beyond
/// it are shed with `ResourceExhausted`. Shared by all clones.
///
/// It learns from every call it admits: answers by their latency, and
/// timeouts (`DeadlineExceeded`), sheds by inner layers (`ResourceExhausted`)
/// and calls dropped before they end as overload, which cuts the limit (see
/// [`OVERLOAD_BACKOFF`]). Other errors teach it nothing.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> AdaptiveLimit<S> {
    /// An adaptive limit in front of `inner`.
    pub fn new(inner: S, config: AdaptiveConfig) -> Self {
        AdaptiveLimit {
            inner,
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }
}

impl<S, Req> Service<Req> for AdaptiveLimit<S>
where
    S: Service<Req, Error = Status>,
{
    type Response = S::Response;
    type Error = Status;
    type Future = AdaptiveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let limit = self.shared.limit.load(Ordering::Relaxed);
        let Some(slot) = try_take(&self.shared.in_flight, limit) else {
            return AdaptiveFuture {
                inner: None,
                sample: None,
                refused: Some(super::shed("adaptive limit")),
            };
        };
        let sample = Sample {
            shared: self.shared.clone(),
            started: Instant::now(),
            slot: Some(slot),
        };
        AdaptiveFuture {
            inner: Some(self.inner.call(req)),
            sample: Some(sample),
            refused: None,
        }
    }
}

pin_project! {
    /// The future of [`AdaptiveLimit`]: the inner call, whose outcome the
    /// limit learns from when it ends (overload if it is dropped first), or
    /// a shed call's refusal.
    pub struct AdaptiveFuture<F> {
        #[pin]
        inner: Option<F>,
        sample: Option<Sample>,
        refused: Option<Status>,
    }
}

impl<F, R> Future for AdaptiveFuture<F>
where
    F: Future<Output = Result<R, Status>>,
{
    type Output = Result<R, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(status) = this.refused.take() {
            return Poll::Ready(Err(status));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Status::internal(
                "adaptive limit future polled after completion",
            )));
        };
        let r = std::task::ready!(inner.poll(cx));
        this.inner.set(None);
        if let Some(mut sample) = this.sample.take() {
            let outcome = match &r {
                Ok(_) => Some(Outcome::Answered(sample.started.elapsed())),
                Err(e) if is_overload(e) => Some(Outcome::Overloaded),
                Err(_) => None,
            };
            sample.finish(outcome);
        }
        Poll::Ready(r)
    }
}

impl<F> fmt::Debug for AdaptiveFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveFuture")
            .field("running", &self.inner.is_some())
            .field("refused", &self.refused)
            .finish()
    }
}

/// One admitted call: its slot, and the outcome it reports — overload if it
/// is dropped before it ends (a total timeout or a caller gone).
struct Sample {
    shared: Arc<Shared>,
    started: Instant,
    // `None` once reported.
    slot: Option<Slot>,
}

impl Sample {
    fn finish(&mut self, outcome: Option<Outcome>) {
        if let Some(slot) = self.slot.take() {
            // The slot goes first: the outcome is for the calls after it.
            drop(slot);
            if let Some(outcome) = outcome {
                self.shared.observe(outcome);
            }
        }
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        self.finish(Some(Outcome::Overloaded));
    }
}

/// Applies one [`AdaptiveLimit`] shared by every service it wraps.
#[derive(Debug, Clone)]
pub struct AdaptiveLimitLayer {
    shared: Arc<Shared>,
}

impl AdaptiveLimitLayer {
    /// An adaptive limit configured by `config`.
    pub fn new(config: AdaptiveConfig) -> Self {
        AdaptiveLimitLayer {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
