//! Discovery and registration against a real etcd (started by the test on
//! loopback), with echo servers, `Balance` and `Retry` from weft-rpc-middleware.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use support::{endpoint, until, until_async, Endpoint, Etcd, Load, SilentProxy, TestServer, TTL};
use tokio::time::Instant;
use tower::Layer;
use weft::core::{Address, Instance, Instances};
use weft_discovery::{
    etcd::{
        encode_instance,
        etcd_client::{self, DeleteOptions, GetOptions},
        instance_key,
    },
    Discover, EtcdDiscover, EtcdRegistry, Registry,
};
use weft_middleware::{
    balance::{Balance, BalanceConfig, Strategy},
    breaker::BreakerConfig,
    Retry, RetryLayer, RetryPolicy,
};

type Lb = Balance<Endpoint, fn(&Instance) -> Endpoint>;

/// The client stack: retries (default policy and 10 % budget; `add` is
/// idempotent) around a round-robin balancer with instance breakers.
fn client(discover: &EtcdDiscover) -> (Lb, Retry<Lb>) {
    let lb: Lb = Balance::new(
        discover,
        "Echo",
        endpoint as fn(&Instance) -> Endpoint,
        BalanceConfig {
            strategy: Strategy::RoundRobin,
            // A short window, so that a crashed instance's errors are not
            // outweighed by its seconds of earlier successes.
            breaker: Some(BreakerConfig {
                window: Duration::from_secs(1),
                min_samples: 5,
                ..BreakerConfig::default()
            }),
            ..BalanceConfig::default()
        },
    )
    .unwrap();
    let retry = RetryLayer::new(RetryPolicy::default())
        .idempotent(["add"])
        .layer(lb.clone());
    (lb, retry)
}

fn addresses(set: &Instances) -> Vec<Address> {
    let mut v: Vec<Address> = set.iter().map(|i| i.address.clone()).collect();
    v.sort_by_key(|a| a.to_string());
    v
}

async fn discover(
    etcd: &Etcd,
    want: usize,
) -> (EtcdDiscover, tokio::sync::watch::Receiver<Instances>) {
    let discover = EtcdDiscover::connect(&[&etcd.url], support::config())
        .await
        .unwrap();
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    let mut wait = rx.clone();
    tokio::time::timeout(Duration::from_secs(5), wait.wait_for(|s| s.len() == want))
        .await
        .unwrap_or_else(|_| panic!("never saw {want} instances: {:?}", *rx.borrow()))
        .unwrap();
    (discover, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_a_json_key_under_a_lease_and_deregistering_deletes_it() {
    let etcd = Etcd::start().await;
    let server = TestServer::start(&etcd, 42).await;
    let mut kv = etcd.client().await;
    let config = support::config();
    let key = instance_key(&config, "Echo", &Instance::new(server.addr.clone()));
    assert_eq!(key, format!("/weft/services/Echo/{}", server.addr));
    let got = kv.get(key.as_str(), None).await.unwrap();
    let stored = &got.kvs()[0];
    assert_eq!(
        stored.value_str().unwrap(),
        encode_instance(&Instance::new(server.addr.clone()).with_weight(42))
    );
    let lease = stored.lease();
    assert_ne!(lease, 0, "the key is not under a lease");
    // Kept alive: after twice the TTL, still there.
    tokio::time::sleep(TTL * 2).await;
    let ttl = kv.lease_time_to_live(lease, None).await.unwrap().ttl();
    assert!(ttl > 0, "the lease was not kept alive (ttl {ttl})");
    assert_eq!(kv.get(key.as_str(), None).await.unwrap().kvs().len(), 1);

    server.handle.shutdown().await;
    let got = kv
        .get(
            "/weft/services/Echo/",
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert!(got.kvs().is_empty(), "deregistering left {:?}", got.kvs());
    let ttl = kv.lease_time_to_live(lease, None).await.unwrap().ttl();
    assert!(ttl <= 0, "the lease outlived deregistration (ttl {ttl})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_calls_a_fourth_gets_traffic_within_a_second_and_a_graceful_exit_fails_nothing(
) {
    let etcd = Etcd::start().await;
    let mut servers = vec![
        TestServer::start(&etcd, 100).await,
        TestServer::start(&etcd, 100).await,
        TestServer::start(&etcd, 100).await,
    ];
    let (discover, rx) = discover(&etcd, 3).await;
    let mut want: Vec<Address> = servers.iter().map(|s| s.addr.clone()).collect();
    want.sort_by_key(|a| a.to_string());
    assert_eq!(addresses(&rx.borrow()), want);

    let (_lb, svc) = client(&discover);
    let load = Load::start(svc, 8, Duration::from_millis(1));
    until(Duration::from_secs(5), "calls on all three", || {
        servers.iter().all(|s| s.calls() >= 50)
    })
    .await;

    // A fourth registers under load and gets traffic within a second of
    // registering (serve returns once registered).
    let started = Instant::now();
    let fourth = TestServer::start(&etcd, 100).await;
    let registered = started.elapsed();
    let waited = until(Duration::from_secs(3), "traffic on the fourth", || {
        fourth.calls() > 0
    })
    .await;
    assert!(
        waited < Duration::from_secs(1),
        "the fourth server got its first call {waited:?} after registering"
    );
    println!("fourth server: registered in {registered:?}, first call {waited:?} later");
    servers.push(fourth);

    // One leaves gracefully under load: not one call fails.
    let leaving = servers.remove(0);
    let left = leaving.addr.clone();
    leaving.handle.shutdown().await;
    assert!(!rx.borrow().iter().any(|i| i.address == left));
    let after = load.ok();
    until(Duration::from_secs(5), "calls after the exit", || {
        load.ok() > after + 200
    })
    .await;
    let tally = load.finish().await;
    assert_eq!(
        tally.failed, 0,
        "{} calls failed during a graceful exit: {:?}",
        tally.failed, tally.errors
    );
    for s in &servers {
        assert!(tally.by[&s.addr] > 0);
    }
    println!("graceful exit: {} calls, spread {:?}", tally.ok, tally.by);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_when_its_lease_expires_and_calls_fail_over() {
    let etcd = Etcd::start().await;
    let mut servers = vec![
        TestServer::start(&etcd, 100).await,
        TestServer::start(&etcd, 100).await,
        TestServer::start(&etcd, 100).await,
    ];
    let (discover, rx) = discover(&etcd, 3).await;
    let (lb, svc) = client(&discover);
    let load = Load::start(svc, 8, Duration::from_millis(1));
    until(Duration::from_secs(5), "calls on all three", || {
        servers.iter().all(|s| s.calls() >= 50)
    })
    .await;

    // Crash one: its connections close at once, its registry (and so its
    // keep-alives) is dropped without deregistering.
    let victim = servers.remove(1);
    let dead = victim.addr.clone();
    let killed = Instant::now();
    victim.handle.abort().await;
    let mut wait = rx.clone();
    tokio::time::timeout(
        TTL + Duration::from_secs(3),
        wait.wait_for(|s| !s.iter().any(|i| i.address == dead)),
    )
    .await
    .expect("the dead server never left the set")
    .unwrap();
    let gone = killed.elapsed();
    assert!(
        gone >= TTL - Duration::from_millis(500),
        "left after {gone:?}, before its lease could expire"
    );
    until(Duration::from_secs(1), "the balancer to drop it", || {
        lb.endpoints().iter().all(|e| e.instance.address != dead)
    })
    .await;
    let after = load.ok();
    until(Duration::from_secs(5), "calls after the crash", || {
        load.ok() > after + 200
    })
    .await;
    let tally = load.finish().await;
    let served: usize = servers.iter().map(TestServer::calls).sum::<usize>();
    println!(
        "crash: left the set after {gone:?}; {} calls ok, {} failed; survivors served {served}",
        tally.ok, tally.failed
    );
    // Every call that hit the dead instance was retried elsewhere: the
    // balancer leaves an instance that refused a connection alone at once,
    // so a retry does not draw it again.
    assert_eq!(tally.failed, 0, "calls failed: {:?}", tally.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_flow_while_etcd_is_down_and_the_watch_resumes_without_losing_updates() {
    let mut etcd = Etcd::start().await;
    let servers = [
        TestServer::start(&etcd, 100).await,
        TestServer::start(&etcd, 100).await,
        TestServer::start(&etcd, 100).await,
    ];
    let (discover, rx) = discover(&etcd, 3).await;
    let (_lb, svc) = client(&discover);
    let load = Load::start(svc, 8, Duration::from_millis(1));
    until(Duration::from_secs(5), "calls on all three", || {
        servers.iter().all(|s| s.calls() >= 50)
    })
    .await;

    // etcd down for five seconds: the known instances keep serving.
    etcd.kill().await;
    let before = load.ok();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = load.ok() - before;
    assert!(during > 500, "only {during} calls while etcd was down");
    assert_eq!(load.failed(), 0, "calls failed while etcd was down");
    assert_eq!(rx.borrow().len(), 3, "the known set was lost");

    // Back: at once, a burst of updates — server 0 to weight 0 and forty
    // writes of a generation tag on server 1 — races the follower's
    // reconnect. The last write of each must arrive.
    etcd.restart().await;
    let mut kv = etcd.client().await;
    let config = support::config();
    let put_keeping_lease = |inst: Instance| {
        let mut kv = kv.clone();
        let key = instance_key(&config, "Echo", &inst);
        async move {
            let lease = kv.get(key.as_str(), None).await.unwrap().kvs()[0].lease();
            kv.put(
                key,
                encode_instance(&inst),
                Some(weft_discovery::etcd::etcd_client::PutOptions::new().with_lease(lease)),
            )
            .await
            .unwrap();
        }
    };
    put_keeping_lease(Instance::new(servers[0].addr.clone()).with_weight(0)).await;
    for generation in 0..40 {
        let mut inst = Instance::new(servers[1].addr.clone());
        inst.tags
            .insert("generation".into(), generation.to_string().into());
        put_keeping_lease(inst).await;
    }
    let mut wait = rx.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        wait.wait_for(|s| {
            s.iter()
                .any(|i| i.address == servers[0].addr && i.weight == 0)
                && s.iter().any(|i| {
                    i.address == servers[1].addr
                        && i.tags.get("generation").map(|g| g.as_str()) == Some("39")
                })
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("updates after etcd returned were lost: {:?}", *rx.borrow()))
    .unwrap();

    // The weight-0 instance stops getting calls.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let zero = servers[0].calls();
    let after = load.ok();
    until(Duration::from_secs(5), "calls after the update", || {
        load.ok() > after + 300
    })
    .await;
    assert_eq!(servers[0].calls(), zero, "a weight-0 instance got calls");

    // The registrations survived the outage: still all three after 2 TTLs.
    tokio::time::sleep(TTL * 2).await;
    let all = kv
        .get(
            "/weft/services/Echo/",
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(
        all.kvs().len(),
        3,
        "a registration did not survive the outage"
    );
    assert_eq!(rx.borrow().len(), 3);
    let tally = load.finish().await;
    assert_eq!(tally.failed, 0, "calls failed: {:?}", tally.errors);
}

// ===== registration ownership and repair (issue 10) =====

fn instance(port: u16) -> Instance {
    Instance::new(format!("127.0.0.1:{port}").parse().unwrap())
}

/// The lease `key` is stored under, or `None` when it is absent.
async fn lease_of(kv: &mut etcd_client::Client, key: &str) -> Option<i64> {
    let got = kv.get(key, None).await.unwrap();
    got.kvs().first().map(|kv| kv.lease())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_process_deregistering_leaves_the_key_of_the_process_that_took_it_over() {
    let etcd = Etcd::start().await;
    let config = support::config();
    let x = instance(7001);
    let key = instance_key(&config, "Echo", &x);
    // Two processes: each registry has its own client and its own leases.
    let a = EtcdRegistry::connect(&[&etcd.url], config.clone())
        .await
        .unwrap();
    let b = EtcdRegistry::connect(&[&etcd.url], config.clone())
        .await
        .unwrap();
    a.register("Echo", &x).await.unwrap();
    // B restarts on the same address and takes the key over.
    b.register("Echo", &x.clone().with_weight(7)).await.unwrap();
    let b_lease = b.lease_id("Echo", &x).unwrap();
    let mut kv = etcd.client().await;
    assert_eq!(lease_of(&mut kv, &key).await, Some(b_lease));

    a.deregister("Echo", &x).await.unwrap();
    assert_eq!(
        lease_of(&mut kv, &key).await,
        Some(b_lease),
        "the stale registry deleted the live instance's key"
    );
    // B keeps it, and A does not take it back.
    tokio::time::sleep(TTL * 2).await;
    let got = kv.get(key.as_str(), None).await.unwrap();
    let stored = &got.kvs()[0];
    assert_eq!(stored.lease(), b_lease);
    assert_eq!(
        stored.value_str().unwrap(),
        encode_instance(&x.clone().with_weight(7))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_on_one_registry_never_revoke_a_live_keys_lease() {
    let etcd = Etcd::start().await;
    let config = support::config();
    let registry = Arc::new(
        EtcdRegistry::connect(&[&etcd.url], config.clone())
            .await
            .unwrap(),
    );
    let (a, b) = (instance(7001), instance(7002));
    let key_a = instance_key(&config, "Echo", &a);
    let key_b = instance_key(&config, "Echo", &b);
    // Rounds of racing registrations: several tasks re-register `a` (new
    // weights) while another registers `b`.
    for _ in 0..20 {
        let mut tasks = Vec::new();
        for w in 1..=6 {
            let (registry, a) = (registry.clone(), a.clone());
            tasks.push(tokio::spawn(async move {
                registry.register("Echo", &a.with_weight(w)).await
            }));
        }
        let (registry2, b2) = (registry.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            registry2.register("Echo", &b2).await
        }));
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    registry.deregister("Echo", &b).await.unwrap();

    let mut kv = etcd.client().await;
    assert_eq!(lease_of(&mut kv, &key_b).await, None);
    let lease = registry.lease_id("Echo", &a).unwrap();
    assert_eq!(
        lease_of(&mut kv, &key_a).await,
        Some(lease),
        "the key is not under the lease the registry keeps alive"
    );
    // Kept alive past several TTLs.
    tokio::time::sleep(TTL * 3).await;
    assert_eq!(lease_of(&mut kv, &key_a).await, Some(lease));
    let ttl = kv.lease_time_to_live(lease, None).await.unwrap().ttl();
    assert!(ttl > 0, "the lease was not kept alive (ttl {ttl})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_key_deleted_behind_the_registrys_back_comes_back() {
    let etcd = Etcd::start().await;
    let config = support::config();
    let registry = EtcdRegistry::connect(&[&etcd.url], config.clone())
        .await
        .unwrap();
    let x = instance(7001).with_weight(3);
    let key = instance_key(&config, "Echo", &x);
    registry.register("Echo", &x).await.unwrap();
    let lease = registry.lease_id("Echo", &x).unwrap();
    let mut kv = etcd.client().await;
    // (The keeper may put it back at once; the delete itself is what
    // counts.)
    assert_eq!(kv.delete(key.as_str(), None).await.unwrap().deleted(), 1);

    until_async(TTL * 3, "the key to be put back", || {
        let (mut kv, key) = (kv.clone(), key.clone());
        async move { lease_of(&mut kv, &key).await.is_some() }
    })
    .await;
    let got = kv.get(key.as_str(), None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), encode_instance(&x));
    // Under the lease still alive (not a new one per repair).
    assert_eq!(got.kvs()[0].lease(), lease);
    assert_eq!(registry.lease_id("Echo", &x), Some(lease));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_lease_expired_while_etcd_was_paused_comes_back() {
    // Paused past the TTL, etcd expires the lease the moment it resumes;
    // the keeper's next stream then opens on a lease etcd no longer knows
    // (etcd-client reports that as an error, not as a TTL of 0), and must
    // register again under a new lease rather than retry the dead one.
    let etcd = Etcd::start().await;
    let config = support::config();
    let registry = EtcdRegistry::connect(&[&etcd.url], config.clone())
        .await
        .unwrap();
    let x = instance(7001);
    let key = instance_key(&config, "Echo", &x);
    registry.register("Echo", &x).await.unwrap();
    let lease = registry.lease_id("Echo", &x).unwrap();

    etcd.pause();
    tokio::time::sleep(TTL * 2).await;
    etcd.resume();
    let mut kv = etcd.client().await;
    until_async(TTL * 5, "the key back under a new lease", || {
        let (mut kv, key) = (kv.clone(), key.clone());
        async move { lease_of(&mut kv, &key).await.is_some_and(|l| l != lease) }
    })
    .await;
    let got = kv.get(key.as_str(), None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), encode_instance(&x));
    assert_eq!(registry.lease_id("Echo", &x), Some(got.kvs()[0].lease()));
    let ttl = kv
        .lease_time_to_live(got.kvs()[0].lease(), None)
        .await
        .unwrap()
        .ttl();
    assert!(ttl > 0, "the new lease is kept alive (ttl {ttl})");
}

// ===== discovery when etcd empties the set or goes silent, and followers (issue 10) =====

/// Every length the set of `rx` takes from now on.
fn record_lengths(mut rx: tokio::sync::watch::Receiver<Instances>) -> Arc<Mutex<Vec<usize>>> {
    let lengths = Arc::new(Mutex::new(Vec::new()));
    let out = lengths.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let len = rx.borrow_and_update().len();
            out.lock().unwrap().push(len);
        }
    });
    lengths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_keeps_the_last_non_empty_set_unless_empty_is_allowed() {
    let etcd = Etcd::start().await;
    let config = support::config();
    let mut kv = etcd.client().await;
    let prefix = config.service_prefix("Echo");
    for port in [7001, 7002] {
        let inst = instance(port);
        kv.put(
            instance_key(&config, "Echo", &inst),
            encode_instance(&inst),
            None,
        )
        .await
        .unwrap();
    }
    let (_discover, rx) = discover(&etcd, 2).await;
    let lengths = record_lengths(rx.clone());

    // Every lease expires at once (a shared outage longer than the TTL):
    // both keys go in one revision.
    kv.delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.borrow().len(), 2, "the set was emptied");
    // A new instance replaces the stale set; the follower saw the delete.
    let c = instance(7003);
    kv.put(instance_key(&config, "Echo", &c), encode_instance(&c), None)
        .await
        .unwrap();
    let mut wait = rx.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        wait.wait_for(|s| addresses(s) == [c.address.clone()]),
    )
    .await
    .unwrap_or_else(|_| panic!("never saw only the new instance: {:?}", *rx.borrow()))
    .unwrap();
    let seen = lengths.lock().unwrap().clone();
    assert!(!seen.contains(&0), "an empty set was published: {seen:?}");

    // With allow_empty(true) the empty set goes out.
    let allowing = EtcdDiscover::connect(&[&etcd.url], config.clone())
        .await
        .unwrap()
        .allow_empty(true);
    let rx = allowing
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(rx.borrow().len(), 1);
    kv.delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut wait = rx.clone();
    tokio::time::timeout(Duration::from_secs(5), wait.wait_for(|s| s.is_empty()))
        .await
        .expect("allow_empty(true) kept a stale set")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_subscribers_are_gone_stops() {
    let etcd = Etcd::start().await;
    let config = support::config();
    let discover = EtcdDiscover::connect(&[&etcd.url], config.clone())
        .await
        .unwrap();
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    let second = discover.subscribe("Echo").unwrap();
    assert_eq!(discover.followed(), ["Echo"]);
    drop(rx);
    // One subscriber left: it still follows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(discover.followed(), ["Echo"]);
    drop(second);
    until(Duration::from_secs(5), "the follower to stop", || {
        discover.followed().is_empty()
    })
    .await;

    // Subscribing again starts a fresh follower that sees changes.
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    let x = instance(7001);
    let mut kv = etcd.client().await;
    kv.put(instance_key(&config, "Echo", &x), encode_instance(&x), None)
        .await
        .unwrap();
    let mut wait = rx.clone();
    tokio::time::timeout(Duration::from_secs(5), wait.wait_for(|s| s.len() == 1))
        .await
        .expect("the new follower missed a put")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_etcd_keeps_the_set_and_a_change_arrives_after_it_resumes() {
    let etcd = Etcd::start().await;
    let config = support::config();
    let mut kv = etcd.client().await;
    let a = instance(7001);
    kv.put(instance_key(&config, "Echo", &a), encode_instance(&a), None)
        .await
        .unwrap();
    let (_discover, rx) = discover(&etcd, 1).await;

    // Paused past the HTTP/2 keep-alive bound of `connect` (2 s interval,
    // 2 s timeout): the watch breaks and the follower retries meanwhile.
    etcd.pause();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(addresses(&rx.borrow()), std::slice::from_ref(&a.address));
    etcd.resume();
    let b = instance(7002);
    kv.put(instance_key(&config, "Echo", &b), encode_instance(&b), None)
        .await
        .unwrap();
    let mut wait = rx.clone();
    tokio::time::timeout(Duration::from_secs(10), wait.wait_for(|s| s.len() == 2))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the change after the pause never arrived: {:?}",
                *rx.borrow()
            )
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_connection_gone_silent_is_replaced_and_sees_changes() {
    let etcd = Etcd::start().await;
    let proxy = SilentProxy::start(&etcd.url).await;
    let config = support::config();
    let mut kv = etcd.client().await;
    let a = instance(7001);
    kv.put(instance_key(&config, "Echo", &a), encode_instance(&a), None)
        .await
        .unwrap();
    let discover = EtcdDiscover::connect(&[&proxy.url], config.clone())
        .await
        .unwrap();
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(rx.borrow().len(), 1);
    let before = proxy.connections();

    // The connection goes silent for good (no FIN, no RST), while etcd
    // itself runs on: only a liveness check ends the watch.
    proxy.freeze();
    let b = instance(7002);
    kv.put(instance_key(&config, "Echo", &b), encode_instance(&b), None)
        .await
        .unwrap();
    let mut wait = rx.clone();
    tokio::time::timeout(Duration::from_secs(15), wait.wait_for(|s| s.len() == 2))
        .await
        .unwrap_or_else(|_| panic!("the watch hung on a silent connection: {:?}", *rx.borrow()))
        .unwrap();
    assert!(proxy.connections() > before, "no new connection was made");
}

/// `EtcdConfig::kitex()`: a server registers where and as Kitex's etcd
/// registry would (`kitex/registry-etcd/<service>/<addr>`, with `network`),
/// and discovery reads records as Kitex's registry writes them (`tags`
/// null, no weight, an IPv6 host without brackets), next to Weft's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kitex_layout_registers_and_discovers_as_kitex_registry_etcd_does() {
    use weft_discovery::etcd::{RecordFormat, KITEX_DEFAULT_WEIGHT};
    let etcd = Etcd::start().await;
    let config = weft_discovery::EtcdConfig {
        format: RecordFormat::Kitex,
        ..support::config()
    }
    .root("kitex/registry-etcd");
    let registry = EtcdRegistry::connect(&[&etcd.url], config.clone())
        .await
        .unwrap();
    let mut inst = Instance::new("127.0.0.1:7001".parse().unwrap()).with_weight(10);
    inst.tags.insert("zone".into(), "a".into());
    registry.register("weft-echo", &inst).await.unwrap();
    let mut kv = etcd.client().await;
    let got = kv
        .get("kitex/registry-etcd/weft-echo/127.0.0.1:7001", None)
        .await
        .unwrap();
    assert_eq!(
        got.kvs()[0].value_str().unwrap(),
        r#"{"network":"tcp","address":"127.0.0.1:7001","weight":10,"tags":{"zone":"a"}}"#
    );
    assert_ne!(got.kvs()[0].lease(), 0, "the key is not under a lease");

    // Written the way registry-etcd writes a Kitex server without tags.
    kv.put(
        "kitex/registry-etcd/weft-echo/::1:7002",
        r#"{"network":"tcp","address":"::1:7002","weight":0,"tags":null}"#,
        None,
    )
    .await
    .unwrap();
    let discover = EtcdDiscover::connect(&[&etcd.url], config).await.unwrap();
    let rx = discover
        .subscribe_ready("weft-echo", Duration::from_secs(5))
        .await
        .unwrap();
    let set = rx.borrow().clone();
    let mut kitex = Instance::new("[::1]:7002".parse().unwrap());
    kitex.weight = KITEX_DEFAULT_WEIGHT;
    assert_eq!(
        addresses(&set),
        vec![inst.address.clone(), kitex.address.clone()]
    );
    assert!(set.contains(&inst), "{set:?}");
    assert!(set.contains(&kitex), "{set:?}");

    // Weft's own layout (root /weft/services) does not see them.
    let weft = EtcdDiscover::connect(&[&etcd.url], support::config())
        .await
        .unwrap()
        .subscribe_ready("weft-echo", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(weft.borrow().is_empty());

    registry.deregister("weft-echo", &inst).await.unwrap();
    let got = kv
        .get("kitex/registry-etcd/weft-echo/127.0.0.1:7001", None)
        .await
        .unwrap();
    assert!(got.kvs().is_empty(), "deregistering left the key");
}
