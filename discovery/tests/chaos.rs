//! Chaos over real sockets and a real etcd: three registered servers and a
//! client with retries, backup requests and instance breakers under load,
//! while a server is killed and restarted, another stops answering (paused)
//! and resumes, and etcd itself is down for longer than the lease TTL.
//!
//! What must hold: no non-idempotent call runs twice (each server counts
//! what it ran, by call id); every call ends with one outcome, none hangs;
//! every call that succeeded ran exactly once; each recovered instance's
//! breaker is closed again within its window; the instance set survives the
//! etcd outage and all three are registered again after it.
//!
//! 15 s by default; `WEFT_CHAOS_SECS=60` runs the long version.

mod support;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::sync::watch;
use tower::{Layer, Service, ServiceExt};
use weft::core::{Address, Context, Instance, Request, ServerBuilder, ServerHandle, Status};
use weft_discovery::{etcd::etcd_client, Discover, EtcdDiscover, EtcdRegistry};
use weft_interop::{EchoAddArgsSend, EchoEchoArgsSend, EchoHandler, EchoRequest, EchoResponse};
use weft_middleware::{
    balance::{Balance, BalanceConfig, Strategy},
    breaker::{BreakerConfig, BreakerState},
    HedgeDelay, PerMethod, RetryBudget, RetryLayer, RetryPolicy,
};

use support::{config, endpoint, until, Endpoint, Etcd, TTL};

type Ledger = Arc<Mutex<HashMap<i64, usize>>>;

/// The echo handler behind a gate (closed: calls wait, as on a paused
/// process) and a ledger of the `add` calls it ran.
fn handler(
    ledger: Ledger,
    paused: watch::Receiver<bool>,
) -> impl Service<
    Request<EchoRequest>,
    Response = weft::core::Response<EchoResponse>,
    Error = Status,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |req: Request<EchoRequest>| {
        let (ledger, mut paused) = (ledger.clone(), paused.clone());
        async move {
            let _ = paused.wait_for(|p| !*p).await;
            if let EchoRequest::Add(a) = &req.message {
                *ledger.lock().unwrap().entry(a.a).or_default() += 1;
            }
            EchoHandler::default().oneshot(req).await
        }
    })
}

struct Node {
    handle: Option<ServerHandle>,
    addr: Address,
    pause: watch::Sender<bool>,
}

async fn start(
    etcd: &Etcd,
    addr: &Address,
    ledger: &Ledger,
    pause: &watch::Sender<bool>,
) -> ServerHandle {
    let registry = EtcdRegistry::connect(&[&etcd.url], config()).await.unwrap();
    let builder = ServerBuilder::new()
        .register(Arc::new(registry), "Echo", Instance::new(addr.clone()))
        .deregister_grace(Duration::from_millis(300))
        .drain_timeout(Duration::from_secs(1));
    let limits = builder.limits_ref().clone();
    // Rebinding a port that was just closed: the listener sets SO_REUSEADDR.
    let mut tries = 0;
    loop {
        let svc = handler(ledger.clone(), pause.subscribe());
        let limits = limits.clone();
        match builder
            .clone()
            .serve(
                addr,
                move || weft::thrift::ThriftServerCodec::<EchoRequest, EchoResponse>::new(&limits),
                svc,
            )
            .await
        {
            Ok(h) => return h,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("rebinding {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("binding {addr}: {e}"),
        }
    }
}

fn free_address() -> Address {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    Address::Tcp(l.local_addr().unwrap())
}

#[derive(Debug, Default)]
struct Outcomes {
    adds_ok: Vec<i64>,
    adds_failed: Vec<(i64, String)>,
    echoes_ok: usize,
    echoes_failed: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_side_effect_twice_and_breakers_recover_through_chaos() {
    let secs: u64 = std::env::var("WEFT_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .max(15);
    let scale = |frac: f64| Duration::from_secs_f64(secs as f64 * frac);
    let mut etcd = Etcd::start().await;
    let ledger: Ledger = Arc::default();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let addr = free_address();
        let (pause, _) = watch::channel(false);
        let handle = start(&etcd, &addr, &ledger, &pause).await;
        nodes.push(Node {
            handle: Some(handle),
            addr,
            pause,
        });
    }

    let discover = EtcdDiscover::connect(&[&etcd.url], config()).await.unwrap();
    let rx = discover.subscribe("Echo").unwrap();
    until(Duration::from_secs(5), "three instances", || {
        rx.borrow().len() == 3
    })
    .await;
    let window = Duration::from_secs(1);
    let lb: Balance<Endpoint, fn(&Instance) -> Endpoint> = Balance::new(
        &discover,
        "Echo",
        endpoint as fn(&Instance) -> Endpoint,
        BalanceConfig {
            // Each instance gets its share, a paused one too: its calls
            // time out and its breaker has something to open on.
            strategy: Strategy::RoundRobin,
            breaker: Some(BreakerConfig {
                window,
                open_for: window,
                min_samples: 5,
                ..BreakerConfig::default()
            }),
            ..BalanceConfig::default()
        },
    )
    .unwrap();
    let quick =
        RetryPolicy::default().backoff(weft_middleware::Backoff::fixed(Duration::from_millis(5)));
    let client = RetryLayer::new(PerMethod::new(quick).with(
        "echo",
        quick.hedge(HedgeDelay::fixed(Duration::from_millis(30))),
    ))
    // `echo` may be repeated and hedged; `add` is retried only when it was
    // certainly not processed.
    .idempotent(["echo"])
    .budget(RetryBudget::unlimited())
    .layer(lb.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicI64::new(0));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop, next) = (client.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                let mut out = Outcomes::default();
                while !stop.load(Ordering::SeqCst) {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    let (method, message) = if id % 2 == 0 {
                        ("add", EchoRequest::Add(EchoAddArgsSend { a: id, b: 1 }))
                    } else {
                        let payload = weft_interop::sample_payload(8);
                        ("echo", EchoRequest::Echo(EchoEchoArgsSend { payload }))
                    };
                    let mut cx = Context::new("Echo", method);
                    cx.set_timeout(Duration::from_millis(800));
                    let r = client.clone().oneshot(Request::new(cx, message)).await;
                    match (method, r) {
                        ("add", Ok(_)) => out.adds_ok.push(id),
                        ("add", Err(e)) => out.adds_failed.push((id, e.to_string())),
                        (_, Ok(_)) => out.echoes_ok += 1,
                        (_, Err(_)) => out.echoes_failed += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                out
            })
        })
        .collect();

    let breaker_of = |lb: &Balance<Endpoint, fn(&Instance) -> Endpoint>, addr: &Address| {
        lb.endpoints()
            .into_iter()
            .find(|e| e.instance.address == *addr)
            .map(|e| e.breaker)
    };
    // Open for one window, then probes: closed again within two windows of
    // the recovery (plus slack for a busy machine).
    let recovers_within = window * 2 + Duration::from_secs(1);

    // Kill one server (no deregistration: its lease expires), then restart
    // it on the same address.
    tokio::time::sleep(scale(0.1)).await;
    let victim = nodes[0].addr.clone();
    nodes[0].handle.take().unwrap().abort().await;
    tokio::time::sleep(scale(0.15)).await;
    nodes[0].handle = Some(start(&etcd, &victim, &ledger, &nodes[0].pause).await);
    let restarted = until(
        recovers_within + TTL,
        "the restarted instance's breaker closed",
        || breaker_of(&lb, &victim) == Some(BreakerState::Closed),
    )
    .await;

    // Pause another: it accepts calls and answers none, then resumes.
    let frozen = nodes[1].addr.clone();
    nodes[1].pause.send_replace(true);
    let opened = {
        let (lb, frozen) = (lb.clone(), frozen.clone());
        let until = tokio::time::Instant::now() + scale(0.15);
        let mut opened = false;
        while tokio::time::Instant::now() < until {
            opened |= breaker_of(&lb, &frozen).is_some_and(|b| b != BreakerState::Closed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        opened
    };
    assert!(opened, "the paused instance's breaker opened");
    nodes[1].pause.send_replace(false);
    let resumed = until(
        recovers_within,
        "the resumed instance's breaker closed",
        || breaker_of(&lb, &frozen) == Some(BreakerState::Closed),
    )
    .await;

    // etcd down for longer than the lease TTL: discovery keeps the set,
    // and the registrations come back once it returns.
    etcd.kill().await;
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    assert_eq!(rx.borrow().len(), 3, "the set survives etcd's outage");
    etcd.restart().await;
    until(
        Duration::from_secs(10),
        "three instances registered again",
        || rx.borrow().len() == 3,
    )
    .await;
    let kv = etcd.client().await;
    support::until_async(Duration::from_secs(10), "three keys in etcd", || {
        let mut kv = kv.clone();
        async move {
            kv.get(
                "/weft/services/Echo/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .map(|r| r.kvs().len() == 3)
            .unwrap_or(false)
        }
    })
    .await;
    tokio::time::sleep(scale(0.1)).await;

    stop.store(true, Ordering::SeqCst);
    let mut all = Outcomes::default();
    for c in callers {
        let o = tokio::time::timeout(Duration::from_secs(5), c)
            .await
            .expect("a call hung instead of ending with an outcome")
            .unwrap();
        all.adds_ok.extend(o.adds_ok);
        all.adds_failed.extend(o.adds_failed);
        all.echoes_ok += o.echoes_ok;
        all.echoes_failed += o.echoes_failed;
    }
    let ran = ledger.lock().unwrap().clone();
    let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "non-idempotent calls ran twice: {twice:?}"
    );
    for id in &all.adds_ok {
        assert_eq!(ran.get(id), Some(&1), "add #{id} succeeded, so it ran once");
    }
    println!(
        "chaos {secs} s: add ok {} failed {}, echo ok {} failed {}; breakers closed {:?} after the \
         restart, {:?} after the resume; e.g. {:?}",
        all.adds_ok.len(),
        all.adds_failed.len(),
        all.echoes_ok,
        all.echoes_failed,
        restarted,
        resumed,
        &all.adds_failed[..all.adds_failed.len().min(3)],
    );
    assert!(
        all.adds_ok.len() > 100 && all.echoes_ok > 100,
        "load went through"
    );
    for n in nodes {
        if let Some(h) = n.handle {
            h.shutdown().await;
        }
    }
}
