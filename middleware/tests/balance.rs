//! Load balancing, circuit breakers (per instance and per method) and
//! limits over real loopback sockets with several Weft servers.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};
use weft::core::{
    Address, Code, ConnectionMode, Context, Instance, Limits, Request, Response, ServerBuilder,
    ServerHandle, StaticDiscover, Status,
};
use weft::thrift::{Protocol, ThriftServerCodec, Transport};
use weft_interop::{EchoAddArgsSend, EchoClient, EchoHandler, EchoRequest, EchoResponse};
use weft_middleware::{
    balance::{Balance, BalanceConfig, HashKey, Strategy},
    breaker::{BreakerConfig, BreakerOpen, BreakerState, CircuitBreaker},
    limit::ConcurrencyLimitLayer,
    retry::RetryLayer,
    FaultConfig, FaultLayer,
};

// ===== test servers =====

/// A server-side wrapper that can delay, fail, or bound the work of the echo
/// handler, to make one instance misbehave.
#[derive(Clone)]
struct Wrapped {
    inner: EchoHandler,
    delay: Duration,
    failing: Arc<AtomicBool>,
    /// Answer every call with an error about the request, not the instance.
    unimplemented: Arc<AtomicBool>,
    workers: Option<Arc<Semaphore>>,
    hits: Arc<AtomicUsize>,
}

impl Service<Request<EchoRequest>> for Wrapped {
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<EchoResponse>, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let this = self.clone();
        this.hits.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let _worker = match &this.workers {
                Some(w) => Some(w.clone().acquire_owned().await.unwrap()),
                None => None,
            };
            if !this.delay.is_zero() {
                tokio::time::sleep(this.delay).await;
            }
            if this.failing.load(Ordering::SeqCst) {
                return Err(Status::unavailable("injected failure"));
            }
            if this.unimplemented.load(Ordering::SeqCst) {
                return Err(Status::unimplemented("not on this service"));
            }
            this.inner.clone().oneshot(req).await
        })
    }
}

struct TestServer {
    handle: ServerHandle,
    handler: EchoHandler,
    failing: Arc<AtomicBool>,
    unimplemented: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl TestServer {
    fn calls(&self) -> usize {
        self.handler.calls.load(Ordering::SeqCst)
    }
    fn addr(&self) -> Address {
        self.handle.local_addr().clone()
    }
}

async fn start_with<L>(delay: Duration, workers: Option<usize>, layer: L) -> TestServer
where
    L: Layer<Wrapped>,
    L::Service: Service<Request<EchoRequest>, Response = Response<EchoResponse>, Error = Status>
        + Clone
        + Send
        + 'static,
    <L::Service as Service<Request<EchoRequest>>>::Future: Send + 'static,
{
    let handler = EchoHandler::default();
    let failing = Arc::new(AtomicBool::new(false));
    let unimplemented = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(Wrapped {
        inner: handler.clone(),
        delay,
        hits: hits.clone(),
        failing: failing.clone(),
        unimplemented: unimplemented.clone(),
        workers: workers.map(|n| Arc::new(Semaphore::new(n))),
    });
    let limits = Limits::default();
    let handle = ServerBuilder::new()
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            svc,
        )
        .await
        .unwrap();
    TestServer {
        handle,
        handler,
        failing,
        unimplemented,
        hits,
    }
}

async fn start(delay: Duration) -> TestServer {
    start_with(delay, None, tower::layer::util::Identity::new()).await
}

fn endpoint(
    inst: &Instance,
) -> weft::core::Client<weft::thrift::ThriftClientCodec<EchoRequest, EchoResponse>> {
    EchoClient::new(
        &inst.address,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    )
    .inner
}

type Lb = Balance<
    weft::core::Client<weft::thrift::ThriftClientCodec<EchoRequest, EchoResponse>>,
    fn(&Instance) -> weft::core::Client<weft::thrift::ThriftClientCodec<EchoRequest, EchoResponse>>,
>;

fn balancer(discover: &StaticDiscover, config: BalanceConfig) -> Lb {
    Balance::new(discover, "Echo", endpoint as fn(&Instance) -> _, config).unwrap()
}

fn add(cx: Context, a: i64) -> Request<EchoRequest> {
    let mut cx = cx;
    cx.service = "Echo".into();
    cx.method = "add".into();
    Request::new(cx, EchoRequest::Add(EchoAddArgsSend { a, b: 1 }))
}

/// `n` calls, `concurrency` at a time; returns (ok, failed, by peer).
async fn drive<S>(
    lb: &S,
    n: usize,
    concurrency: usize,
    cx: impl Fn(usize) -> Context + Send + Sync + 'static,
) -> (usize, usize, HashMap<Address, usize>)
where
    S: Service<Request<EchoRequest>, Response = Response<EchoResponse>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let cx = Arc::new(cx);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (lb, next, cx) = (lb.clone(), next.clone(), cx.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut by) = (0, 0, HashMap::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return (ok, failed, by);
                }
                match lb.clone().oneshot(add(cx(i), i as i64)).await {
                    Ok(r) => {
                        ok += 1;
                        *by.entry(r.cx.peer.clone().unwrap()).or_insert(0) += 1;
                    }
                    Err(_) => failed += 1,
                }
            }
        }));
    }
    let (mut ok, mut failed, mut by) = (0, 0, HashMap::new());
    for t in tasks {
        let (o, f, b) = t.await.unwrap();
        ok += o;
        failed += f;
        for (k, v) in b {
            *by.entry(k).or_insert(0) += v;
        }
    }
    (ok, failed, by)
}

fn no_breaker(strategy: Strategy) -> BalanceConfig {
    BalanceConfig {
        strategy,
        breaker: None,
        ..BalanceConfig::default()
    }
}

// ===== the cases =====

/// Round robin gives each instance exactly its turn, counted where the
/// calls land (each server's handler), and the client's view agrees; an
/// instance of weight 0 gets none of them, and the others share its turns
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly_and_weight_zero_gets_nothing() {
    let servers = [
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
    ];
    let discover = StaticDiscover::from_addresses(servers.iter().map(TestServer::addr));
    let lb = balancer(&discover, no_breaker(Strategy::RoundRobin));
    let (ok, failed, by) = drive(&lb, 9_999, 16, |_| Context::default()).await;
    assert_eq!((ok, failed), (9_999, 0));
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(s.hits.load(Ordering::SeqCst), 3_333, "server {i}'s calls");
        assert_eq!(s.calls(), 3_333, "server {i}'s handler");
        assert_eq!(by[&s.addr()], 3_333, "answers from server {i}");
    }

    // Weight 0: no traffic at all, the other two an exact half each.
    discover.set(
        servers
            .iter()
            .enumerate()
            .map(|(i, s)| Instance::new(s.addr()).with_weight(if i == 0 { 0 } else { 100 })),
    );
    until("the balancer sees weight 0", || {
        lb.endpoints()
            .iter()
            .any(|e| e.instance.address == servers[0].addr() && e.instance.weight == 0)
    })
    .await;
    let before: Vec<usize> = servers
        .iter()
        .map(|s| s.hits.load(Ordering::SeqCst))
        .collect();
    let (ok, _, _) = drive(&lb, 1000, 8, |_| Context::default()).await;
    assert_eq!(ok, 1000);
    let after: Vec<usize> = servers
        .iter()
        .map(|s| s.hits.load(Ordering::SeqCst))
        .collect();
    let delta: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(delta, [0, 500, 500], "calls per server after weight 0");
}

/// Wait (polling, up to 10 s) until `cond` holds; panics naming `what`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_random_follows_the_weights() {
    let servers = [
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
    ];
    let weights = [100u32, 200, 300];
    let discover = StaticDiscover::new(
        servers
            .iter()
            .zip(weights)
            .map(|(s, w)| Instance::new(s.addr()).with_weight(w)),
    );
    let lb = balancer(&discover, no_breaker(Strategy::WeightedRandom));
    let n = 30_000;
    let (ok, _, by) = drive(&lb, n, 32, |_| Context::default()).await;
    assert_eq!(ok, n);
    for (s, w) in servers.iter().zip(weights) {
        let want = f64::from(w) / 600.0;
        let got = by[&s.addr()] as f64 / n as f64;
        assert!(
            (got / want - 1.0).abs() <= 0.05,
            "weight {w}: share {got}, want {want}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keeps_keys_and_moves_few_when_one_leaves() {
    let servers = [
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
    ];
    let discover = StaticDiscover::from_addresses(servers.iter().map(TestServer::addr));
    let lb = balancer(
        &discover,
        no_breaker(Strategy::ConsistentHash {
            key: HashKey::metainfo("user"),
            // Calls go one at a time here, so load never binds.
            load_factor: 1.25,
        }),
    );
    let keyed = |k: usize| {
        let mut cx = Context::default();
        cx.metainfo.persistent.insert("user", format!("user-{k}"));
        cx
    };
    let owner = |by: &HashMap<Address, usize>| by.keys().next().cloned().unwrap();
    let mut first = Vec::new();
    for k in 0..400 {
        // Each key three times: always the same instance.
        let (ok, _, by) = drive(&lb, 3, 1, move |_| keyed(k)).await;
        assert_eq!(ok, 3);
        assert_eq!(by.len(), 1, "key {k} was spread over {by:?}");
        first.push(owner(&by));
    }
    // A retry of a key (the retry layer marks it) goes to the next instance
    // on the ring, not back to the one that just failed it.
    for (k, owned_by) in first.iter().enumerate().take(20) {
        let (_, _, by) = drive(&lb, 1, 1, move |_| {
            let mut cx = keyed(k);
            cx.metainfo
                .transient
                .insert(weft_middleware::retry::PREVIOUS_ATTEMPTS, "1");
            cx
        })
        .await;
        assert_ne!(
            &owner(&by),
            owned_by,
            "retry of key {k} went back to its owner"
        );
    }
    // One of four leaves: only its keys move, about a quarter.
    let leaving = servers[2].addr();
    discover.set(
        servers
            .iter()
            .filter(|s| s.addr() != leaving)
            .map(|s| Instance::new(s.addr())),
    );
    until("the balancer drops the instance that left", || {
        lb.endpoints().iter().all(|e| e.instance.address != leaving)
    })
    .await;
    let mut moved = 0;
    for (k, before) in first.iter().enumerate() {
        let (_, _, by) = drive(&lb, 1, 1, move |_| keyed(k)).await;
        let now = owner(&by);
        if *before == leaving {
            assert_ne!(now, leaving);
            moved += 1;
        } else {
            assert_eq!(&now, before, "key {k} moved though its instance stayed");
        }
    }
    assert!(moved > 0 && moved <= 400 * 2 / 5, "moved {moved} of 400");
}

/// One hot key, many calls at once on slow servers: counted on the servers,
/// the key's owner takes no more than its bounded share and the rest spill
/// to the next instances; with an unbounded factor (the control) the owner
/// takes them all, so the bound is what spreads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_spills_past_its_owner_under_bounded_load() {
    for (load_factor, bounded) in [(1.25, true), (1e9, false)] {
        let servers = [
            start(Duration::from_millis(20)).await,
            start(Duration::from_millis(20)).await,
            start(Duration::from_millis(20)).await,
            start(Duration::from_millis(20)).await,
        ];
        let discover = StaticDiscover::from_addresses(servers.iter().map(TestServer::addr));
        let lb = balancer(
            &discover,
            no_breaker(Strategy::ConsistentHash {
                key: HashKey::metainfo("user"),
                load_factor,
            }),
        );
        let hot = |_| {
            let mut cx = Context::default();
            cx.metainfo.persistent.insert("user", "hot".to_owned());
            cx
        };
        let (ok, failed, _) = drive(&lb, 240, 24, hot).await;
        assert_eq!((ok, failed), (240, 0));
        let hits: Vec<usize> = servers.iter().map(TestServer::calls).collect();
        let most = *hits.iter().max().unwrap();
        if bounded {
            // 24 in flight over 4: the bound is ceil(25 × 1.25 / 4) = 8
            // each, so the owner has at most about a third of them.
            assert!(most <= 240 / 2, "owner took {most} of 240: {hits:?}");
            assert!(
                hits.iter().filter(|&&n| n > 0).count() >= 3,
                "spilled to too few: {hits:?}"
            );
        } else {
            assert_eq!(most, 240, "unbounded: all on the owner, {hits:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_steers_away_from_a_slow_instance() {
    // Fault injection makes one instance 20x slower than the others.
    let delayed = |ms| FaultLayer::new(FaultConfig::none().delay(1.0, Duration::from_millis(ms)));
    let servers = [
        start_with(Duration::ZERO, None, delayed(1)).await,
        start_with(Duration::ZERO, None, delayed(1)).await,
        start_with(Duration::ZERO, None, delayed(20)).await,
    ];
    let discover = StaticDiscover::from_addresses(servers.iter().map(TestServer::addr));
    let lb = balancer(&discover, no_breaker(Strategy::PowerOfTwoChoices));
    let n = 2_000;
    let (ok, _, by) = drive(&lb, n, 8, |_| Context::default()).await;
    assert_eq!(ok, n);
    let slow = by.get(&servers[2].addr()).copied().unwrap_or(0) as f64 / n as f64;
    assert!(
        slow <= 0.2,
        "the 20x slower instance got {slow} of the calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_breaker_opens_on_a_failing_instance_and_closes_when_it_heals() {
    let servers = [
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
        start(Duration::ZERO).await,
    ];
    servers[1].failing.store(true, Ordering::SeqCst);
    let discover = StaticDiscover::from_addresses(servers.iter().map(TestServer::addr));
    let lb = balancer(
        &discover,
        BalanceConfig {
            strategy: Strategy::RoundRobin,
            breaker: Some(BreakerConfig {
                min_samples: 5,
                error_rate: 0.5,
                open_for: Duration::from_secs(1),
                probes: 1,
                ..BreakerConfig::default()
            }),
            ..BalanceConfig::default()
        },
    );
    // The caller's stack: retries (within the default 10 % budget) over the
    // balancer, as the default client assembles it.
    let client = RetryLayer::default().idempotent(["add"]).layer(lb.clone());
    let n = 10_000;
    let (ok, failed, by) = drive(&client, n, 16, |_| Context::default()).await;
    assert_eq!(ok + failed, n);
    let rate = ok as f64 / n as f64;
    assert!(rate >= 0.999, "success rate {rate} ({failed} failed)");
    let bad = servers[1].addr();
    // The breaker, not luck: without it the failing instance would take a
    // third of the calls; open, it only sees the first few and the probes.
    let reached_bad = servers[1].hits.load(Ordering::SeqCst);
    assert!(
        reached_bad <= 100,
        "the failing instance was sent {reached_bad} calls"
    );
    assert!(!by.contains_key(&bad));
    let state = |lb: &Lb| {
        lb.endpoints()
            .into_iter()
            .find(|e| e.instance.address == bad)
            .unwrap()
            .breaker
    };
    assert_ne!(state(&lb), BreakerState::Closed);

    // Heal it: the next half-open probe succeeds and closes the breaker.
    servers[1].failing.store(false, Ordering::SeqCst);
    let before = servers[1].calls();
    let mut closed = false;
    for _ in 0..100 {
        drive(&lb, 30, 3, |_| Context::default()).await;
        if state(&lb) == BreakerState::Closed {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "the breaker never closed after the instance healed");
    let (ok, failed, by) = drive(&lb, 300, 3, |_| Context::default()).await;
    assert_eq!((ok, failed), (300, 0));
    assert!(by[&bad] >= 90 && servers[1].calls() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_instance_set_under_load_loses_no_call() {
    let servers = [
        start(Duration::from_millis(2)).await,
        start(Duration::from_millis(2)).await,
        start(Duration::from_millis(2)).await,
        start(Duration::from_millis(2)).await,
    ];
    let discover = Arc::new(StaticDiscover::from_addresses(
        servers[..2].iter().map(TestServer::addr),
    ));
    let lb = balancer(&discover, no_breaker(Strategy::PowerOfTwoChoices));
    let load = tokio::spawn({
        let lb = lb.clone();
        async move { drive(&lb, 3_000, 16, |_| Context::default()).await }
    });
    // Each change once the load has made progress since the last (counted
    // on the servers), so every change lands while calls are in flight.
    let sets: [&[usize]; 4] = [&[0, 1, 2], &[1, 2], &[2, 3], &[0, 1, 2, 3]];
    let served = || {
        servers
            .iter()
            .map(|s| s.hits.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    for (n, set) in sets.iter().enumerate() {
        until("calls made since the last change", || {
            served() >= (n + 1) * 500
        })
        .await;
        discover.set(set.iter().map(|&i| Instance::new(servers[i].addr())));
    }
    assert!(!load.is_finished(), "the load ended before the last change");
    let (ok, failed, by) = load.await.unwrap();
    assert_eq!((ok, failed), (3_000, 0));
    assert!(by.len() == 4, "not every instance took part: {by:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_concurrency_limit_sheds_and_keeps_admitted_latency() {
    // Four workers; sixteen callers at once.
    let limited = start_with(
        Duration::from_millis(100),
        Some(4),
        ConcurrencyLimitLayer::new(4),
    )
    .await;
    let unlimited = start_with(
        Duration::from_millis(100),
        Some(4),
        tower::layer::util::Identity::new(),
    )
    .await;
    let run = |addr: Address| async move {
        let client = EchoClient::new(
            &addr,
            Transport::TTHeader,
            Protocol::Binary,
            ConnectionMode::Multiplexed,
        );
        client.ping(Context::default()).await.ok();
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    let r = client.add(Context::default(), 1, 1).await;
                    (r, started.elapsed())
                })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    };
    let limited_results = run(limited.addr()).await;
    let admitted: Vec<Duration> = limited_results
        .iter()
        .filter(|(r, _)| r.is_ok())
        .map(|(_, d)| *d)
        .collect();
    let shed = limited_results
        .iter()
        .filter(|(r, _)| matches!(r, Err(e) if e.code() == Code::ResourceExhausted))
        .count();
    assert_eq!(admitted.len() + shed, 16);
    assert!(shed >= 8, "only {shed} calls shed");
    // Without the limit the same burst queues four deep behind the workers.
    let queued = run(unlimited.addr()).await;
    let worst_queued = queued.iter().map(|(_, d)| *d).max().unwrap();
    let worst_admitted = admitted.iter().max().copied().unwrap();
    assert!(
        worst_admitted * 2 < worst_queued,
        "admitted calls took up to {worst_admitted:?}, unlimited ones {worst_queued:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_instance_is_left_alone_and_retries_go_elsewhere() {
    let servers = [start(Duration::ZERO).await, start(Duration::ZERO).await];
    // An address nothing listens on: connections are refused.
    let dead: Address = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().into()
    };
    let discover =
        StaticDiscover::from_addresses(servers.iter().map(TestServer::addr).chain([dead.clone()]));
    // Random picks: without leaving the dead instance alone, a third of the
    // retries would draw it again and the budget would run dry.
    let lb = balancer(&discover, no_breaker(Strategy::WeightedRandom));
    let client = RetryLayer::default().idempotent(["add"]).layer(lb.clone());
    let (ok, failed, by) = drive(&client, 1_000, 4, |_| Context::default()).await;
    assert_eq!((ok, failed), (1_000, 0));
    assert!(!by.contains_key(&dead));
}

/// A failed call says which instance answered, and, after retries, how
/// many attempts were made and what each instance said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_instances_and_the_attempts() {
    let server = start(Duration::ZERO).await;
    server.failing.store(true, Ordering::SeqCst);
    let discover = StaticDiscover::from_addresses([server.addr()]);
    let lb = balancer(&discover, no_breaker(Strategy::RoundRobin));
    let e = lb
        .clone()
        .oneshot(add(Context::default(), 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(
        e.message(),
        format!("instance {}: injected failure", server.addr())
    );

    // An answer about the request, the same from any instance, passes
    // unchanged: the caller sees exactly what the handler said.
    server.failing.store(false, Ordering::SeqCst);
    server.unimplemented.store(true, Ordering::SeqCst);
    let e = lb
        .clone()
        .oneshot(add(Context::default(), 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert_eq!(e.message(), "not on this service");

    // Two addresses nothing listens on: both attempts are refused.
    let dead: Vec<Address> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().into()
        })
        .collect();
    let discover = StaticDiscover::from_addresses(dead.clone());
    let lb = balancer(&discover, no_breaker(Strategy::RoundRobin));
    let client = RetryLayer::new(weft_middleware::retry::RetryPolicy::default().max_attempts(2))
        .idempotent(["add"])
        .layer(lb);
    let e = client
        .oneshot(add(Context::default(), 1))
        .await
        .unwrap_err();
    let m = e.message();
    assert!(m.starts_with("2 attempts failed: 1) "), "{m}");
    for addr in &dead {
        assert!(m.contains(&addr.to_string()), "{addr} not in {m}");
    }
    assert!(m.contains("refused"), "{m}");
}

// ===== the per-method breaker =====

/// Fails `add` (only) while `failing` is set; counts each method's calls
/// as they reach the server.
#[derive(Clone)]
struct FailAdd<S> {
    inner: S,
    failing: Arc<AtomicBool>,
    adds: Arc<AtomicUsize>,
    echoes: Arc<AtomicUsize>,
}

impl<S> Service<Request<EchoRequest>> for FailAdd<S>
where
    S: Service<Request<EchoRequest>, Response = Response<EchoResponse>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<EchoResponse>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<EchoResponse>, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let add = matches!(req.message, EchoRequest::Add(_));
        if add {
            self.adds.fetch_add(1, Ordering::SeqCst);
        } else {
            self.echoes.fetch_add(1, Ordering::SeqCst);
        }
        if add && self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { Err(Status::unavailable("add is down")) });
        }
        Box::pin(self.inner.clone().oneshot(req))
    }
}

fn echo(cx: Context) -> Request<EchoRequest> {
    let mut cx = cx;
    cx.service = "Echo".into();
    cx.method = "echo".into();
    let payload = weft_interop::sample_payload(8);
    Request::new(
        cx,
        EchoRequest::Echo(weft_interop::EchoEchoArgsSend { payload }),
    )
}

/// One method failing opens its own breaker and no other: while `add`'s is
/// open its calls fail fast without reaching the server, `echo` on the same
/// instance keeps flowing (every call answered, counted on the server), and
/// once `add` heals the breaker lets its probes through and closes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_breaker_opens_for_its_method_only_and_closes_when_it_heals() {
    let failing = Arc::new(AtomicBool::new(true));
    let (adds, echoes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let svc = FailAdd {
        inner: EchoHandler::default(),
        failing: failing.clone(),
        adds: adds.clone(),
        echoes: echoes.clone(),
    };
    let limits = Limits::default();
    let server = ServerBuilder::new()
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
            svc,
        )
        .await
        .unwrap();
    let conn = EchoClient::new(
        server.local_addr(),
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    )
    .inner;
    let open_for = Duration::from_millis(300);
    let client = CircuitBreaker::new(
        conn,
        BreakerConfig {
            min_samples: 10,
            error_rate: 0.5,
            open_for,
            probes: 2,
            consecutive_failures: None,
            ..BreakerConfig::default()
        },
    );
    let (add_breaker, echo_breaker) = (
        client.breaker("Echo", "add"),
        client.breaker("Echo", "echo"),
    );

    // Ten failing adds, each followed by a good echo: add's window is all
    // failures and opens on the tenth; echo's is all successes.
    for i in 0..10 {
        let e = client
            .clone()
            .oneshot(add(Context::default(), i))
            .await
            .unwrap_err();
        assert_eq!(e.message(), "add is down", "add {i}");
        client
            .clone()
            .oneshot(echo(Context::default()))
            .await
            .unwrap();
    }
    assert_eq!(add_breaker.state(), BreakerState::Open);
    assert_eq!(echo_breaker.state(), BreakerState::Closed);
    assert_eq!(adds.load(Ordering::SeqCst), 10);

    // Open: adds are refused before they are sent; echoes all get through.
    for i in 0..100 {
        let e = client
            .clone()
            .oneshot(add(Context::default(), i))
            .await
            .unwrap_err();
        assert!(e.is_not_sent(), "add {i} while open: {e:?}");
        let by_breaker = std::error::Error::source(&e).is_some_and(|s| s.is::<BreakerOpen>());
        assert!(by_breaker, "add {i} while open: {e:?}");
        client
            .clone()
            .oneshot(echo(Context::default()))
            .await
            .unwrap();
    }
    assert_eq!(
        adds.load(Ordering::SeqCst),
        10,
        "adds that reached the server"
    );
    assert_eq!(
        echoes.load(Ordering::SeqCst),
        110,
        "echoes that reached the server"
    );

    // Heal add. Once `open_for` has passed the breaker reads half-open, its
    // two probes succeed, and it closes: adds flow again.
    failing.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + open_for + Duration::from_secs(10);
    while add_breaker.state() == BreakerState::Open {
        assert!(tokio::time::Instant::now() < deadline, "never half-open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(add_breaker.state(), BreakerState::HalfOpen);
    for i in 0..2 {
        let r = client.clone().oneshot(add(Context::default(), i)).await;
        assert!(r.is_ok(), "probe {i}: {r:?}");
    }
    assert_eq!(add_breaker.state(), BreakerState::Closed);
    for i in 0..50 {
        let r = client
            .clone()
            .oneshot(add(Context::default(), i))
            .await
            .unwrap();
        assert!(matches!(r.message, EchoResponse::Add(_)), "add {i}");
    }
    assert_eq!(adds.load(Ordering::SeqCst), 10 + 2 + 50);
    assert_eq!(echo_breaker.state(), BreakerState::Closed);
    server.shutdown().await;
}
