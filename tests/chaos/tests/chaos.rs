//! Chaos over real sockets, real processes and a real etcd (issue 10).
//!
//! Three `chaos-server` processes register as `Echo` in etcd; a client
//! discovers them there and calls through the client stack's layers —
//! total timeout → retry (backup requests for the idempotent `echo`) →
//! method breaker → round-robin balancer with a breaker per instance →
//! per-attempt timeout → connection — while, in cycles, a server is
//! SIGKILLed and restarted on its port, another is SIGSTOPped until its
//! breaker opens and then SIGCONTinued, and etcd is out for longer than the
//! lease TTL — paused and resumed (its leases then expire at once), or
//! killed and restarted, in turn.
//!
//! What must hold:
//! - no `add` (not idempotent) runs twice: every call has its own id and the
//!   servers report each execution, killed ones included;
//! - every call ends with one outcome before its deadline (plus scheduling
//!   slack): an `add` that succeeded ran exactly once, one refused as "not
//!   sent" never ran;
//! - after each recovery the instance's breaker (and the method breaker) is
//!   closed again within a bound of its window;
//! - the client's instance set is never empty, the etcd outage included.
//!
//! 15 s by default (at least two cycles, so a little more on a slow
//! machine); `WEFT_CHAOS_SECS=60` (or more) runs the long version,
//! repeating the cycle with the roles rotated.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use weft::{
    core::{Address, ConnectionMode, Context, Instance, Request},
    discovery::EtcdDiscover,
    middleware::{
        balance::{Balance, BalanceConfig, MakeService, Strategy},
        breaker::{BreakerConfig, BreakerState, CircuitBreaker},
        Backoff, HedgeDelay, PerMethod, RetryLayer, RetryPolicy, Timeout, TimeoutLayer,
    },
    thrift::{Protocol, Transport},
};
use weft_chaos::{etcd_config, Etcd, Ledger, Server, TTL};
use weft_interop::{EchoAddArgsSend, EchoClient, EchoEchoArgsSend, EchoRequest};

const BIN: &str = env!("CARGO_BIN_EXE_chaos-server");
/// Each call's total timeout, retries and backup requests included.
const TOTAL: Duration = Duration::from_secs(1);
/// Each attempt's timeout: what ends a call to a paused server.
const ATTEMPT: Duration = Duration::from_millis(300);
/// How late past its deadline a call may end on a loaded 2-core machine
/// before it counts as hung.
const SLACK: Duration = Duration::from_secs(1);
/// The instance breakers' window; they open for as long.
const WINDOW: Duration = Duration::from_secs(1);
const CALLERS: usize = 8;

type Conn = Timeout<
    weft::core::Client<weft::thrift::ThriftClientCodec<EchoRequest, weft_interop::EchoResponse>>,
>;

struct Connect(TimeoutLayer);

impl MakeService<Conn> for Connect {
    fn make(&self, inst: &Instance) -> Conn {
        let c = EchoClient::new(
            &inst.address,
            Transport::TTHeader,
            Protocol::Binary,
            ConnectionMode::Multiplexed,
        );
        self.0.layer(c.inner)
    }
}

type Lb = Balance<Conn, Connect>;

fn instance_breaker() -> BreakerConfig {
    BreakerConfig {
        window: WINDOW,
        open_for: WINDOW / 2,
        min_samples: 5,
        consecutive_failures: Some(5),
        ..BreakerConfig::default()
    }
}

fn addr(port: u16) -> Address {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn breaker_of(lb: &Lb, port: u16) -> Option<BreakerState> {
    let a = addr(port);
    lb.endpoints()
        .into_iter()
        .find(|e| e.instance.address == a)
        .map(|e| e.breaker)
}

/// Wait until `f` holds, checking every 10 ms, for at most `limit`;
/// returns how long it took.
async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[derive(Debug)]
enum Outcome {
    Ok,
    /// A definite refusal: the call never reached a handler.
    NotSent(String),
    /// Failed, and may have been processed.
    Failed(String),
}

#[derive(Debug, Default)]
struct Calls {
    adds: Vec<(i64, Outcome)>,
    echoes_ok: usize,
    echoes_failed: usize,
    hung: Vec<(i64, &'static str)>,
    slowest: Duration,
}

/// The instance set as the client sees it, watched for the whole run.
#[derive(Debug, Default)]
struct SetWatch {
    /// Times the discovered set or the balancer's endpoints were empty.
    empty_seen: AtomicUsize,
    /// The smallest set seen.
    min_seen: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_no_duplicate_side_effects_and_breakers_recover() {
    let secs: u64 = std::env::var("WEFT_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .max(15);
    let run = Duration::from_secs(secs);
    let mut etcd = Etcd::start().await;
    let ledger: Ledger = Ledger::default();
    let mut servers: Vec<Option<Server>> = Vec::new();
    for _ in 0..3 {
        let (url, l) = (etcd.url.clone(), ledger.clone());
        let s = tokio::task::spawn_blocking(move || Server::start(BIN, &url, 0, &l))
            .await
            .unwrap();
        servers.push(Some(s));
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.as_ref().unwrap().port).collect();

    let discover = EtcdDiscover::connect(&[&etcd.url], etcd_config())
        .await
        .unwrap();
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(10))
        .await
        .unwrap();
    until(
        Duration::from_secs(10),
        "three instances discovered",
        || rx.borrow().len() == 3,
    )
    .await;
    let lb: Lb = Balance::new(
        &discover,
        "Echo",
        Connect(TimeoutLayer::new(ATTEMPT)),
        BalanceConfig {
            // Every instance gets its share, a paused one too, so that its
            // breaker has calls to open on.
            strategy: Strategy::RoundRobin,
            breaker: Some(instance_breaker()),
            ..BalanceConfig::default()
        },
    )
    .unwrap();
    let method = CircuitBreaker::new(lb.clone(), BreakerConfig::default());
    let policy = RetryPolicy::default().backoff(Backoff::fixed(Duration::from_millis(5)));
    let client = TimeoutLayer::new(TOTAL).layer(
        RetryLayer::new(PerMethod::new(policy).with(
            "echo",
            policy.hedge(HedgeDelay::fixed(Duration::from_millis(50))),
        ))
        // `echo` may be repeated and hedged; `add` only retried when it
        // certainly was not processed.
        .idempotent(["echo"])
        .layer(method.clone()),
    );
    let method_closed = {
        let (add, echo) = (
            method.breaker("Echo", "add"),
            method.breaker("Echo", "echo"),
        );
        move || add.state() == BreakerState::Closed && echo.state() == BreakerState::Closed
    };

    // ===== watch the instance set =====
    let watch = Arc::new(SetWatch {
        min_seen: AtomicUsize::new(usize::MAX),
        ..SetWatch::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (mut rx, lb, watch, stop) = (rx.clone(), lb.clone(), watch.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = rx.borrow_and_update().len().min(lb.endpoints().len());
                if n == 0 {
                    watch.empty_seen.fetch_add(1, Ordering::SeqCst);
                }
                watch.min_seen.fetch_min(n, Ordering::SeqCst);
                // Every published set, and the balancer between them.
                let _ = tokio::time::timeout(Duration::from_millis(5), rx.changed()).await;
            }
        })
    };

    // ===== load =====
    let next = Arc::new(AtomicI64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, stop, next, ok) = (client.clone(), stop.clone(), next.clone(), ok.clone());
            tokio::spawn(async move {
                let mut calls = Calls::default();
                while !stop.load(Ordering::SeqCst) {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    let (method, message) = if id % 2 == 0 {
                        ("add", EchoRequest::Add(EchoAddArgsSend { a: id, b: 1 }))
                    } else {
                        let payload = weft_interop::sample_payload(8);
                        ("echo", EchoRequest::Echo(EchoEchoArgsSend { payload }))
                    };
                    let req = Request::new(Context::new("Echo", method), message);
                    let started = Instant::now();
                    let r = tokio::time::timeout(TOTAL + SLACK, client.clone().oneshot(req)).await;
                    calls.slowest = calls.slowest.max(started.elapsed());
                    let Ok(r) = r else {
                        calls.hung.push((id, method));
                        continue;
                    };
                    if r.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    match (method, r) {
                        ("add", Ok(_)) => calls.adds.push((id, Outcome::Ok)),
                        ("add", Err(e)) if e.is_not_sent() => {
                            calls.adds.push((id, Outcome::NotSent(e.to_string())))
                        }
                        ("add", Err(e)) => calls.adds.push((id, Outcome::Failed(e.to_string()))),
                        (_, Ok(_)) => calls.echoes_ok += 1,
                        (_, Err(_)) => calls.echoes_failed += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                calls
            })
        })
        .collect();

    // ===== chaos, in cycles =====
    let started = Instant::now();
    let ends = started + run;
    let mut figures = Vec::new();
    let mut cycle = 0;
    loop {
        let began = Instant::now();
        let (k, p) = (cycle % 3, (cycle + 1) % 3);

        // Kill one (no deregistration: its lease runs out), keep it down a
        // while, restart it on its port.
        until(Duration::from_secs(5), "calls flowing", || {
            ok.load(Ordering::Relaxed) > 0
        })
        .await;
        servers[k].take().unwrap().kill();
        let down = Instant::now() + Duration::from_secs(1);
        let mut opened_on_kill = false;
        while Instant::now() < down {
            opened_on_kill |= breaker_of(&lb, ports[k]).is_some_and(|b| b != BreakerState::Closed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (url, l, port) = (etcd.url.clone(), ledger.clone(), ports[k]);
        servers[k] = Some(
            tokio::task::spawn_blocking(move || Server::start(BIN, &url, port, &l))
                .await
                .unwrap(),
        );
        // Its breaker probes after `open_for` and closes within a window;
        // the balancer first waits out its reconnect backoff (at most 5 s,
        // far less after a 1 s outage), and the instance may have to be
        // discovered again if its lease ran out.
        let restarted = until(
            2 * WINDOW + TTL + Duration::from_secs(3),
            "the restarted instance's breaker closed",
            || breaker_of(&lb, ports[k]) == Some(BreakerState::Closed) && method_closed(),
        )
        .await;

        // Pause another: it holds its connections and answers nothing; its
        // attempts time out until its breaker opens. Then resume it.
        servers[p].as_ref().unwrap().pause();
        let opened = until(
            Duration::from_secs(5),
            "the paused instance's breaker opened",
            || breaker_of(&lb, ports[p]).is_some_and(|b| b != BreakerState::Closed),
        )
        .await;
        servers[p].as_ref().unwrap().resume();
        let resumed = until(
            2 * WINDOW + Duration::from_secs(2),
            "the resumed instance's breaker closed",
            || breaker_of(&lb, ports[p]) == Some(BreakerState::Closed) && method_closed(),
        )
        .await;

        // etcd out for longer than the lease TTL, in turn killed (and
        // restarted on its data) and paused (and resumed: the leases whose
        // keep-alives it missed expire at once, every instance's key is
        // deleted, and the servers put theirs back). The client keeps its
        // instances and its calls succeed throughout.
        let ok_before = ok.load(Ordering::Relaxed);
        let killed = cycle % 2 == 1;
        if killed {
            etcd.kill();
        } else {
            etcd.pause();
        }
        tokio::time::sleep(TTL + Duration::from_secs(1)).await;
        let ok_during = ok.load(Ordering::Relaxed) - ok_before;
        assert!(ok_during > 0, "no call succeeded while etcd was out");
        assert_eq!(rx.borrow().len(), 3, "the set survives etcd's outage");
        if killed {
            etcd.restart().await;
        } else {
            etcd.resume();
        }
        let mut keys_back = None;
        let back_started = Instant::now();
        while keys_back.is_none() {
            let keys = etcd.keys("/weft/services/Echo/").await;
            if keys == Some(3) && rx.borrow().len() == 3 {
                keys_back = Some(back_started.elapsed());
            } else {
                assert!(
                    back_started.elapsed() < Duration::from_secs(15),
                    "three registrations back in etcd within 15 s of its return: {keys:?} keys, \
                     {} discovered",
                    rx.borrow().len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        figures.push(format!(
            "cycle {cycle}: killed :{} (its breaker {}opened), closed {:?} after restart; paused :{}, \
             breaker opened in {:?}, closed {:?} after resume; {} calls ok while etcd was {}, \
             registrations back {:?} after",
            ports[k],
            if opened_on_kill { "" } else { "not " },
            restarted,
            ports[p],
            opened,
            resumed,
            ok_during,
            if killed { "killed" } else { "paused" },
            keys_back.unwrap(),
        ));
        cycle += 1;
        // At least two cycles, so that every run has etcd both paused and
        // killed; more while the next one fits in the run.
        if cycle >= 2 && Instant::now() + began.elapsed() > ends {
            break;
        }
    }
    // The rest of the run is load with every server up.
    tokio::time::sleep_until(ends.max(Instant::now() + Duration::from_millis(500))).await;

    // ===== outcomes =====
    stop.store(true, Ordering::SeqCst);
    let mut all = Calls::default();
    for c in callers {
        let c = tokio::time::timeout(TOTAL + SLACK * 2, c)
            .await
            .expect("a caller ended")
            .unwrap();
        all.adds.extend(c.adds);
        all.echoes_ok += c.echoes_ok;
        all.echoes_failed += c.echoes_failed;
        all.hung.extend(c.hung);
        all.slowest = all.slowest.max(c.slowest);
    }
    watcher.await.unwrap();
    let mut reports = Vec::new();
    for s in servers.into_iter().flatten() {
        reports.push(
            tokio::task::spawn_blocking(move || s.finish())
                .await
                .unwrap(),
        );
    }
    for (lines, counted) in &reports {
        assert_eq!(lines, counted, "a server reported every add it ran");
    }
    let ran: HashMap<i64, u32> = ledger.lock().unwrap().clone();

    assert!(
        all.hung.is_empty(),
        "calls hung past their deadline: {:?}",
        all.hung
    );
    let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "adds ran more than once (id, runs): {twice:?}"
    );
    let (mut ok_adds, mut not_sent, mut failed) = (0, 0, 0);
    let mut example_failures = Vec::new();
    for (id, outcome) in &all.adds {
        let runs = ran.get(id).copied().unwrap_or(0);
        match outcome {
            Outcome::Ok => {
                ok_adds += 1;
                assert_eq!(runs, 1, "add #{id} succeeded, so it ran once");
            }
            Outcome::NotSent(e) => {
                not_sent += 1;
                assert_eq!(
                    runs, 0,
                    "add #{id} was refused as not sent ({e}), yet it ran"
                );
            }
            Outcome::Failed(e) => {
                failed += 1;
                if example_failures.len() < 3 {
                    example_failures.push(e.clone());
                }
            }
        }
    }
    let outcomes = all.adds.len() + all.echoes_ok + all.echoes_failed;
    let issued = next.load(Ordering::SeqCst) as usize;
    assert_eq!(
        outcomes + all.hung.len(),
        issued,
        "every call issued ended with one outcome"
    );
    assert_eq!(
        watch.empty_seen.load(Ordering::SeqCst),
        0,
        "the client's instance set was emptied"
    );
    println!(
        "chaos {secs} s ({cycle} cycles): {issued} calls; add ok {ok_adds}, refused (not sent) \
         {not_sent}, failed {failed}; echo ok {}, failed {}; slowest call {:?}; smallest instance \
         set {}; adds run {}; e.g. {example_failures:?}\n{}",
        all.echoes_ok,
        all.echoes_failed,
        all.slowest,
        watch.min_seen.load(Ordering::SeqCst),
        ran.values().sum::<u32>(),
        figures.join("\n"),
    );
    assert!(
        ok_adds > 100 && all.echoes_ok > 100,
        "the load went through"
    );
}
