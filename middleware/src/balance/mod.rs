//! Load balancing over the instances a [`Discover`] yields.
//!
//! [`Balance`] keeps one endpoint per instance — a service made by the
//! caller's `make` function (typically a Weft client of that address), its
//! in-flight count, its peak-EWMA latency and its own circuit breaker — and
//! picks one per call with a [`Strategy`]: round robin, weighted random,
//! power of two choices on latency × load, or consistent hashing on a key
//! from the request context with bounded load. Weight 0 gets no traffic; an
//! instance whose breaker is open is skipped. When the instance set changes,
//! endpoints of instances that stay are kept, and calls already running on
//! one that left finish on it: a change loses no call.

mod error;
mod future;
mod ring;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rand::Rng;
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use weft_core::{Address, Context, Delivery, Discover, Instance, Instances, Request, Status};

use crate::breaker::{Breaker, BreakerConfig, BreakerState};

pub use error::NoInstance;
pub use future::ResponseFuture;
pub use ring::{HashKey, MAX_RING_POINTS, MAX_VNODES_PER_INSTANCE};

/// How long a latency sample keeps half its weight in the peak-EWMA: long
/// enough to smooth noise, short enough to notice an instance slowing down.
pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);
/// The latency a failed call counts as for P2C: fast failures would
/// otherwise draw traffic to a broken instance.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);
/// How far above the average in-flight load consistent hashing lets one
/// instance go before it spills a key to the next (Mirrokni et al., 2016).
pub const DEFAULT_LOAD_FACTOR: f64 = 1.25;

/// How [`Balance`] picks an instance.
#[derive(Clone)]
pub enum Strategy {
    /// Each instance in turn.
    RoundRobin,
    /// At random, in proportion to weight.
    WeightedRandom,
    /// Two at random (by weight), the one with the lower peak-EWMA latency ×
    /// (in-flight + 1).
    PowerOfTwoChoices,
    /// The instance owning the key's point on a hash ring (virtual nodes in
    /// proportion to weight up to [`MAX_VNODES_PER_INSTANCE`], the ring at
    /// most [`MAX_RING_POINTS`]; a specified hash, so a key lands on the same
    /// instance in every process), skipping instances loaded above
    /// `load_factor` × the average.
    ConsistentHash {
        /// Takes the key from the call's context; calls without one are
        /// spread at random.
        key: HashKey,
        /// Bound on one instance's share of in-flight calls, relative to the
        /// mean. Default 1.25.
        load_factor: f64,
    },
}

impl fmt::Debug for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::RoundRobin => f.write_str("RoundRobin"),
            Strategy::WeightedRandom => f.write_str("WeightedRandom"),
            Strategy::PowerOfTwoChoices => f.write_str("PowerOfTwoChoices"),
            Strategy::ConsistentHash { load_factor, .. } => f
                .debug_struct("ConsistentHash")
                .field("load_factor", load_factor)
                .finish(),
        }
    }
}

impl Strategy {
    /// Consistent hashing on `key` with the default load factor.
    pub fn consistent_hash(
        key: impl Fn(&Context) -> Option<u64> + Send + Sync + 'static,
    ) -> Strategy {
        Strategy::ConsistentHash {
            key: HashKey::new(key),
            load_factor: DEFAULT_LOAD_FACTOR,
        }
    }
}

/// Configures a [`Balance`].
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    /// The picking strategy. Default power of two choices.
    pub strategy: Strategy,
    /// A breaker per instance; `None` turns them off. Default on.
    pub breaker: Option<BreakerConfig>,
    /// Peak-EWMA decay. Default 10 s.
    pub ewma_decay: Duration,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            strategy: Strategy::PowerOfTwoChoices,
            breaker: Some(BreakerConfig::default()),
            ewma_decay: DEFAULT_EWMA_DECAY,
        }
    }
}

/// Makes the service of one instance (typically a Weft client of its
/// address) when it appears; never called per call. Any
/// `Fn(&Instance) -> S + Send + Sync + 'static` is one. A trait of its own
/// rather than `Fn`, so that a type-erased maker (`Box<dyn MakeService<S>>`)
/// is not a higher-ranked type: rustc cannot prove futures holding those
/// `Send`.
pub trait MakeService<S>: Send + Sync + 'static {
    /// The service of `instance`.
    fn make(&self, instance: &Instance) -> S;
}

impl<S, F> MakeService<S> for F
where
    F: Fn(&Instance) -> S + Send + Sync + 'static,
{
    fn make(&self, instance: &Instance) -> S {
        self(instance)
    }
}

/// What the balancer knows of one instance.
struct Endpoint<S> {
    instance: Instance,
    service: S,
    in_flight: AtomicUsize,
    // Peak EWMA in nanoseconds and when it was last updated; the lock is per
    // instance, never shared across instances.
    ewma: Mutex<(f64, Instant)>,
    breaker: Option<Breaker>,
    // Until when the instance is left alone after it could not be reached
    // (connection refused: the call never left), as nanoseconds since
    // `epoch()` (0: not left alone), and how many times in a row that
    // happened — the backoff grows with it. Atomics: every pick reads them.
    down_until: AtomicU64,
    down_count: AtomicU32,
    // The balancer's total in flight, when its strategy needs one.
    total: Option<Arc<AtomicUsize>>,
}

/// A fixed instant to measure `down_until` from.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch(t: Instant) -> u64 {
    // At least 1, so that 0 keeps meaning "not left alone".
    (t.saturating_duration_since(epoch()).as_nanos() as u64).max(1)
}

impl<S> Endpoint<S> {
    fn cost(&self, decay: Duration) -> f64 {
        let (ewma, at) = *self.ewma.lock();
        // Unobserved time decays the estimate, so an instance penalised for
        // failing gets tried again once it has been left alone a while; one
        // with no sample yet looks as good as the best.
        let idle = Instant::now().saturating_duration_since(at).as_secs_f64();
        let ewma = ewma * (-idle / decay.as_secs_f64()).exp();
        ewma.max(1.0) * (self.in_flight.load(Ordering::Relaxed) as f64 + 1.0)
    }

    fn observe(&self, rtt: Duration, decay: Duration) {
        let now = Instant::now();
        let rtt = rtt.as_nanos() as f64;
        let mut g = self.ewma.lock();
        let (ewma, at) = *g;
        let next = if rtt > ewma {
            // Peak: jump to a worse latency at once.
            rtt
        } else {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            let w = (-elapsed / decay.as_secs_f64()).exp();
            ewma * w + rtt * (1.0 - w)
        };
        *g = (next, now);
    }

    fn available(&self) -> bool {
        self.instance.weight > 0
            && self.breaker.as_ref().is_none_or(|b| b.is_available())
            && self.is_reachable()
    }

    fn is_reachable(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until == 0 || until <= since_epoch(Instant::now())
    }

    /// Leave an unreachable instance alone for a while (50 ms, doubling up
    /// to 5 s), so that retries go elsewhere at once instead of waiting for
    /// its breaker; any answer clears it.
    fn reachable(&self, reached: bool) {
        if reached {
            // The common case reads and writes nothing shared.
            if self.down_count.load(Ordering::Relaxed) != 0 {
                self.down_count.store(0, Ordering::Relaxed);
                self.down_until.store(0, Ordering::Relaxed);
            }
        } else {
            let n = self.down_count.fetch_add(1, Ordering::Relaxed);
            let backoff = Duration::from_millis(50)
                .saturating_mul(1 << n.min(7))
                .min(Duration::from_secs(5));
            self.down_until
                .store(since_epoch(Instant::now() + backoff), Ordering::Relaxed);
        }
    }
}

struct Snapshot<S> {
    endpoints: Vec<Arc<Endpoint<S>>>,
    ring: ring::Ring,
    // Running sums of the weights (`cumulative[i]`: endpoints 0..=i), so
    // a weighted draw is a binary search rather than a pass over them all.
    cumulative: Vec<u64>,
    // The endpoints round robin takes turns over: those of weight > 0.
    turns: Vec<usize>,
}

/// Draws before a pick that keeps landing on unavailable instances falls
/// back to a pass over the available ones.
const DRAWS: usize = 4;
/// Distinct instances a consistent-hashing pick remembers: a retry skips one
/// per previous attempt, and no retry policy makes more attempts than this.
const SEEN: usize = 8;
/// Ring points a consistent-hashing pick looks at before it settles for the
/// first available instance: with [`SEEN`] distinct instances wanted and a
/// few unavailable or loaded ones in between, plenty; it keeps the worst
/// pick (every instance loaded) from walking a ring of 2^18 points.
const WALK: usize = 256;

impl<S> Snapshot<S> {
    fn new(endpoints: Vec<Arc<Endpoint<S>>>, ring: ring::Ring) -> Snapshot<S> {
        let cumulative = endpoints
            .iter()
            .scan(0u64, |sum, e| {
                *sum += u64::from(e.instance.weight);
                Some(*sum)
            })
            .collect();
        let turns = (0..endpoints.len())
            .filter(|&i| endpoints[i].instance.weight > 0)
            .collect();
        Snapshot {
            endpoints,
            ring,
            cumulative,
            turns,
        }
    }

    /// An endpoint drawn at random in proportion to weight, available or
    /// not: O(log n).
    fn draw(&self) -> Option<&Arc<Endpoint<S>>> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        let x = rand::rng().random_range(0..total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        self.endpoints.get(i)
    }

    /// An available endpoint other than `not`, in proportion to weight: a
    /// few draws, then a pass over the available ones when they all missed.
    fn draw_available(&self, not: Option<&Arc<Endpoint<S>>>) -> Option<&Arc<Endpoint<S>>> {
        let other = |e: &&Arc<Endpoint<S>>| not.is_none_or(|n| !Arc::ptr_eq(e, n));
        for _ in 0..DRAWS {
            match self.draw() {
                Some(e) if other(&e) && e.available() => return Some(e),
                Some(_) => {}
                None => return None,
            }
        }
        weighted(
            self.endpoints
                .iter()
                .filter(other)
                .filter(|e| e.available()),
        )
    }
}

struct Shared<S, M> {
    service: String,
    make: M,
    config: BalanceConfig,
    // Read on every call without a lock; replaced whole when the set changes.
    snapshot: ArcSwap<Snapshot<S>>,
    next: AtomicUsize,
    // Calls in flight over all endpoints, kept (by the endpoints' guards)
    // only for consistent hashing, whose load bound needs it on every pick.
    in_flight: Arc<AtomicUsize>,
}

/// A load-balancing `tower::Service` over the instances of one service.
pub struct Balance<S, M> {
    shared: Arc<Shared<S, M>>,
    _watch: Arc<WatchTask>,
}

impl<S, M> Clone for Balance<S, M> {
    fn clone(&self) -> Self {
        Balance {
            shared: self.shared.clone(),
            _watch: self._watch.clone(),
        }
    }
}

impl<S, M> fmt::Debug for Balance<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.shared.snapshot.load_full();
        f.debug_struct("Balance")
            .field("service", &self.shared.service)
            .field("strategy", &self.shared.config.strategy)
            .field(
                "instances",
                &snap
                    .endpoints
                    .iter()
                    .map(|e| &e.instance.address)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Stops the discovery follower when the last balancer handle goes.
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One instance as the balancer sees it, for inspection and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInfo {
    /// The instance.
    pub instance: Instance,
    /// Calls in flight on it.
    pub in_flight: usize,
    /// Peak-EWMA latency.
    pub latency: Duration,
    /// Its breaker's state (closed when breakers are off).
    pub breaker: BreakerState,
}

impl<S, M> Balance<S, M>
where
    S: Send + Sync + 'static,
    M: MakeService<S>,
{
    /// Balance calls to `service` over the instances `discover` yields,
    /// making an endpoint service for each with `make`. Follows changes in
    /// a background task; must be called inside a Tokio runtime.
    pub fn new(
        discover: &dyn Discover,
        service: &str,
        make: M,
        config: BalanceConfig,
    ) -> Result<Self, Status> {
        let mut rx = discover.subscribe(service)?;
        let first = rx.borrow_and_update().clone();
        let shared = Arc::new(Shared {
            service: service.to_owned(),
            make,
            config,
            snapshot: ArcSwap::from_pointee(Snapshot::new(Vec::new(), ring::Ring::default())),
            next: AtomicUsize::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
        });
        shared.update(&first);
        let weak = Arc::downgrade(&shared);
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let set = rx.borrow_and_update().clone();
                match weak.upgrade() {
                    Some(shared) => shared.update(&set),
                    None => return,
                }
            }
        });
        Ok(Balance {
            shared,
            _watch: Arc::new(WatchTask(task)),
        })
    }

    /// Every endpoint's state.
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        endpoints_of(&self.shared.snapshot.load_full())
    }

    /// A view of [`endpoints`](Self::endpoints) that does not keep the
    /// balancer alive: `None` once it is gone. For status pages.
    pub(crate) fn endpoints_view(&self) -> crate::observe::views::EndpointsView
    where
        M: Send + Sync,
    {
        let weak = Arc::downgrade(&self.shared);
        Box::new(move || {
            weak.upgrade()
                .map(|shared| endpoints_of(&shared.snapshot.load_full()))
        })
    }
}

fn endpoints_of<S>(snap: &Snapshot<S>) -> Vec<EndpointInfo> {
    {
        snap.endpoints
            .iter()
            .map(|e| EndpointInfo {
                instance: e.instance.clone(),
                in_flight: e.in_flight.load(Ordering::Relaxed),
                latency: Duration::from_nanos(e.ewma.lock().0 as u64),
                breaker: e
                    .breaker
                    .as_ref()
                    .map_or(BreakerState::Closed, |b| b.state()),
            })
            .collect()
    }
}

impl<S, M> Shared<S, M>
where
    M: MakeService<S>,
{
    fn update(&self, set: &Instances) {
        let old = self.snapshot.load_full();
        let mut by_addr: HashMap<&Address, &Arc<Endpoint<S>>> = old
            .endpoints
            .iter()
            .map(|e| (&e.instance.address, e))
            .collect();
        let endpoints: Vec<Arc<Endpoint<S>>> = set
            .iter()
            .map(|inst| match by_addr.remove(&inst.address) {
                // Same address, same weight and tags: keep it, with its
                // connections, latency and breaker.
                Some(e) if e.instance == *inst => e.clone(),
                _ => Arc::new(Endpoint {
                    instance: inst.clone(),
                    service: self.make.make(inst),
                    in_flight: AtomicUsize::new(0),
                    ewma: Mutex::new((0.0, Instant::now())),
                    breaker: self.config.breaker.clone().map(|c| {
                        Breaker::new(c).labelled("instance", inst.address.to_string().into())
                    }),
                    down_until: AtomicU64::new(0),
                    down_count: AtomicU32::new(0),
                    total: matches!(self.config.strategy, Strategy::ConsistentHash { .. })
                        .then(|| self.in_flight.clone()),
                }),
            })
            .collect();
        let ring = match self.config.strategy {
            Strategy::ConsistentHash { .. } => ring::Ring::build(&endpoints, |e| &e.instance),
            _ => ring::Ring::default(),
        };
        crate::observe::governance::discovery_update(&self.service, endpoints.len());
        self.snapshot
            .store(Arc::new(Snapshot::new(endpoints, ring)));
    }

    fn pick(&self, snap: &Snapshot<S>, cx: &Context) -> Option<Arc<Endpoint<S>>> {
        let eps = &snap.endpoints;
        match &self.config.strategy {
            Strategy::RoundRobin => {
                // An unavailable instance's turn passes to the next turn,
                // not to its neighbour, so the others share its calls evenly.
                let turns = &snap.turns;
                (0..turns.len()).find_map(|_| {
                    let i = self.next.fetch_add(1, Ordering::Relaxed) % turns.len();
                    let e = &eps[turns[i]];
                    e.available().then(|| e.clone())
                })
            }
            Strategy::WeightedRandom => snap.draw_available(None).cloned(),
            Strategy::PowerOfTwoChoices => {
                if let [only] = eps.as_slice() {
                    return only.available().then(|| only.clone());
                }
                let a = snap.draw_available(None)?;
                // Two distinct candidates when there are two.
                let b = snap.draw_available(Some(a)).unwrap_or(a);
                let decay = self.config.ewma_decay;
                Some(if a.cost(decay) <= b.cost(decay) { a } else { b }.clone())
            }
            Strategy::ConsistentHash { key, load_factor } => match key.key(cx) {
                Some(h) => self.pick_hashed(snap, cx, h, *load_factor),
                None => snap.draw_available(None).cloned(),
            },
        }
    }

    /// Consistent hashing with bounded load: the first instance clockwise
    /// from `h` that is available and below `load_factor` × the mean
    /// in-flight load, or the `skip`-th such for a retry. No pass over the
    /// endpoints and no allocation: the total in flight is a balancer-wide
    /// counter, the live count the snapshot's (instances of weight > 0),
    /// and the walk stops after [`WALK`] ring points.
    fn pick_hashed(
        &self,
        snap: &Snapshot<S>,
        cx: &Context,
        h: u64,
        load_factor: f64,
    ) -> Option<Arc<Endpoint<S>>> {
        let eps = &snap.endpoints;
        // Calls still running on instances that just left count too, until
        // they end: the bound is a little loose for a moment, never tight.
        let total = self.in_flight.load(Ordering::Relaxed);
        let live = snap.turns.len().max(1);
        let bound = (((total + 1) as f64 * load_factor / live as f64).ceil() as usize).max(1);
        // A retry (see `retry::PREVIOUS_ATTEMPTS`) moves on to the next
        // instance on the ring rather than the one that failed; attempts are
        // few, so `seen` is a small array (a later retry reuses the last).
        let skip = cx
            .metainfo
            .transient
            .get(crate::retry::PREVIOUS_ATTEMPTS)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            .min(SEEN - 1);
        let mut seen = [0usize; SEEN];
        let mut found = 0;
        // The first available instance whatever its load: where the key goes
        // when none near it is under the bound (instances behind open
        // breakers still count in `live`, so the bound can be below every
        // live instance's load).
        let mut fallback = None;
        for i in snap.ring.walk(h).take(WALK) {
            let e = &eps[i];
            if !e.available() {
                continue;
            }
            fallback.get_or_insert(i);
            if e.in_flight.load(Ordering::Relaxed) < bound && !seen[..found].contains(&i) {
                seen[found] = i;
                found += 1;
                if found > skip {
                    break;
                }
            }
        }
        let chosen = match found {
            0 => fallback,
            n => Some(seen[skip.min(n - 1)]),
        };
        match chosen {
            Some(i) => Some(eps[i].clone()),
            // Nothing available near the key: anywhere available.
            None => snap.draw_available(None).cloned(),
        }
    }
}

fn weighted<'a, S: 'a>(
    eps: impl Iterator<Item = &'a Arc<Endpoint<S>>> + Clone,
) -> Option<&'a Arc<Endpoint<S>>> {
    let total: u64 = eps.clone().map(|e| u64::from(e.instance.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut x = rand::rng().random_range(0..total);
    for e in eps {
        let w = u64::from(e.instance.weight);
        if x < w {
            return Some(e);
        }
        x -= w;
    }
    None
}

/// Decrements an endpoint's in-flight count however the call ends.
struct InFlight<S>(Arc<Endpoint<S>>);

impl<S> InFlight<S> {
    fn new(ep: Arc<Endpoint<S>>) -> Self {
        ep.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(total) = &ep.total {
            total.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(ep)
    }

    fn endpoint(&self) -> &Endpoint<S> {
        &self.0
    }
}

impl<S> Drop for InFlight<S> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(total) = &self.0.total {
            total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<S, M, T, R> Service<Request<T>> for Balance<S, M>
where
    S: Service<Request<T>, Response = R, Error = Status> + Clone + Send + Sync + 'static,
    M: MakeService<S>,
    T: Send + 'static,
{
    type Response = R;
    type Error = Status;
    type Future = ResponseFuture<S, Request<T>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        // Readiness is per endpoint and checked per call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<T>) -> Self::Future {
        let shared = &self.shared;
        let picked = {
            let snap = shared.snapshot.load();
            // When every instance is being left alone for being unreachable,
            // try one anyway rather than fail without trying.
            shared.pick(&snap, &req.cx).or_else(|| {
                weighted(snap.endpoints.iter().filter(|e| {
                    e.instance.weight > 0 && e.breaker.as_ref().is_none_or(|b| b.is_available())
                }))
                .cloned()
            })
        };
        let Some(ep) = picked else {
            let why = {
                let snap = shared.snapshot.load();
                let known = snap.endpoints.len();
                let idle = snap
                    .endpoints
                    .iter()
                    .filter(|e| e.instance.weight == 0)
                    .count();
                let open = snap
                    .endpoints
                    .iter()
                    .filter(|e| e.breaker.as_ref().is_some_and(|b| !b.is_available()))
                    .count();
                match known {
                    0 => "none discovered".to_owned(),
                    _ => format!(
                        "{known} discovered: {idle} of weight 0, {open} behind open breakers"
                    ),
                }
            };
            return ResponseFuture::refused(
                Status::unavailable(format!(
                    "no available instance of {} ({why})",
                    shared.service
                ))
                .with_delivery(Delivery::NotSent)
                .with_source(NoInstance(()))
                .with_unsent(req),
            );
        };
        let permit = match &ep.breaker {
            Some(b) => match b.try_acquire() {
                Ok(p) => Some(p),
                Err(status) => return ResponseFuture::refused(status.with_unsent(req)),
            },
            None => None,
        };
        name_instance(&ep.instance.address);
        let call = ep.service.clone().oneshot(req);
        ResponseFuture::new(call, InFlight::new(ep), permit, shared.config.ewma_decay)
    }
}

/// Name the instance picked in the current span (a retry's `rpc.attempt`,
/// or the call's span): only the balancer knows it before the answer.
fn name_instance(address: &weft_core::Address) {
    let span = tracing::Span::current();
    if span.is_none() {
        return;
    }
    match address {
        weft_core::Address::Tcp(a) => {
            span.record("network.peer.address", tracing::field::display(a.ip()));
            span.record("network.peer.port", a.port());
        }
        weft_core::Address::Host(host, port) => {
            span.record("network.peer.address", host.as_str());
            span.record("network.peer.port", *port);
        }
        weft_core::Address::Unix(p) => {
            span.record("network.peer.address", tracing::field::display(p.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;
    use weft_core::StaticDiscover;

    use super::*;
    use crate::timeout::script::{ms, Scripted, Step};

    fn req() -> Request<u32> {
        Request::new(Context::new("svc", "get"), 0)
    }

    #[tokio::test(start_paused = true)]
    async fn instance_probes_whose_futures_are_dropped_are_given_back() {
        let mut steps: Vec<Step> = (0..10)
            .map(|_| Step::Err(Duration::ZERO, Status::unavailable("down")))
            .collect();
        steps.extend([
            Step::Ok(Duration::from_secs(3600)),
            Step::Ok(Duration::from_secs(3600)),
        ]);
        let inner = Scripted::new(steps).then_always(Step::Ok(ms(1)));
        let discover = StaticDiscover::new([Instance::new("127.0.0.1:1".parse().unwrap())]);
        let make = {
            let inner = inner.clone();
            move |_: &Instance| inner.clone()
        };
        let config = BalanceConfig {
            strategy: Strategy::RoundRobin,
            breaker: Some(BreakerConfig {
                min_samples: 10,
                probes: 2,
                consecutive_failures: None,
                ..BreakerConfig::default()
            }),
            ..BalanceConfig::default()
        };
        let lb = Balance::new(&discover, "svc", make, config).unwrap();
        for _ in 0..10 {
            assert!(lb.clone().oneshot(req()).await.is_err());
        }
        assert_eq!(lb.endpoints()[0].breaker, BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..2 {
            let mut fut = lb.clone().oneshot(req());
            assert!(futures::poll!(&mut fut).is_pending());
            drop(fut);
        }
        assert_eq!(inner.cancelled(), 2);
        lb.clone()
            .oneshot(req())
            .await
            .expect("admitted as a probe again");
        lb.clone().oneshot(req()).await.unwrap();
        assert_eq!(lb.endpoints()[0].breaker, BreakerState::Closed);
    }
}
