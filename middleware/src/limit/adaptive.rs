use std::{
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
use tokio::time::Instant;
use tower::{Layer, Service};
use weft_core::Status;

use super::concurrency::try_take;

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
    /// Latency samples averaged per update. Default 10.
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
    sum: Duration,
    count: u32,
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
                count: 0,
            }),
            config,
        }
    }

    /// Gradient update: limit × (no-load rtt / rtt) + √limit of headroom.
    fn observe(&self, rtt: Duration) {
        let c = &self.config;
        let mut s = self.state.lock();
        let now = Instant::now();
        if now.saturating_duration_since(s.no_load_since) > c.probe_interval {
            s.no_load_rtt = None;
        }
        if s.no_load_rtt.is_none_or(|m| rtt < m) {
            s.no_load_rtt = Some(rtt);
            s.no_load_since = now;
        }
        s.sum += rtt;
        s.count += 1;
        if s.count < c.samples_per_update {
            return;
        }
        let avg = s.sum / s.count;
        s.sum = Duration::ZERO;
        s.count = 0;
        let no_load = s.no_load_rtt.unwrap_or(avg).as_secs_f64().max(1e-6);
        // Never more than double, never below half, per update: latency noise
        // must not swing the limit wildly.
        let gradient = (no_load / avg.as_secs_f64().max(1e-6)).clamp(0.5, 1.0);
        let target = s.limit * gradient + s.limit.sqrt();
        let next = (s.limit * (1.0 - c.smoothing) + target * c.smoothing)
            .clamp(c.min as f64, c.max as f64);
        s.limit = next;
        self.limit.store(next.round() as usize, Ordering::Relaxed);
    }
}

/// A concurrency limit that adapts to latency; calls beyond it are shed with
/// `ResourceExhausted`. Shared by all clones.
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
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let limit = self.shared.limit.load(Ordering::Relaxed);
        let Some(slot) = try_take(&self.shared.in_flight, limit) else {
            return Box::pin(std::future::ready(Err(super::shed("adaptive limit"))));
        };
        let shared = self.shared.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let started = Instant::now();
            let r = fut.await;
            // Only answers the service produced say anything about its latency.
            if r.is_ok() {
                shared.observe(started.elapsed());
            }
            drop(slot);
            r
        })
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
}
