//! DNS discovery against names that resolve locally: `localhost`, an
//! `/etc/hosts` entry the test adds and removes, and SRV records from a tiny
//! DNS server the test runs on loopback.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU8, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use hickory_resolver::{
    config::{NameServerConfig, ResolverConfig, ResolverOpts},
    name_server::TokioConnectionProvider,
    proto::{
        op::{Message, MessageType, OpCode, ResponseCode},
        rr::{rdata::SRV, Name, RData, Record},
        xfer::Protocol,
    },
    TokioResolver,
};
use tokio::{net::UdpSocket, sync::watch};
use tower::ServiceExt;
use weft::core::{Address, Instance, Instances, ServerBuilder};
use weft_discovery::{dns::hickory_resolver, DnsConfig, DnsDiscover};
use weft_interop::EchoHandler;

mod support;

fn fast() -> DnsConfig {
    DnsConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
    }
}

fn v4(set: &Instances) -> Vec<(Address, u32)> {
    let mut v: Vec<(Address, u32)> = set
        .iter()
        .filter(|i| matches!(&i.address, Address::Tcp(a) if a.is_ipv4()))
        .map(|i| (i.address.clone(), i.weight))
        .collect();
    v.sort_by_key(|(a, _)| a.to_string());
    v
}

async fn wait_for(rx: &watch::Receiver<Instances>, what: &str, f: impl FnMut(&Instances) -> bool) {
    let mut waiting = rx.clone();
    let done = tokio::time::timeout(Duration::from_secs(5), waiting.wait_for(f))
        .await
        .is_ok();
    assert!(done, "timed out waiting for {what}: {:?}", *rx.borrow());
}

fn tcp(ip: [u8; 4], port: u16) -> Address {
    Address::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_resolves_and_a_client_calls_through_it() {
    let server = weft_interop::serve("127.0.0.1:0", ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap();
    let port = match server.local_addr() {
        Address::Tcp(a) => a.port(),
        other => panic!("{other}"),
    };
    let discover = DnsDiscover::new(fast()).name("Echo", format!("localhost:{port}"));
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(v4(&rx.borrow()), [(tcp([127, 0, 0, 1], port), 100)]);

    let lb = weft_middleware::balance::Balance::new(
        &discover,
        "Echo",
        support::endpoint as fn(&Instance) -> support::Endpoint,
        weft_middleware::balance::BalanceConfig {
            strategy: weft_middleware::balance::Strategy::RoundRobin,
            ..Default::default()
        },
    )
    .unwrap();
    // Only the IPv4 instance listens; `localhost` may also give ::1, so
    // retry what is refused.
    let svc = tower::Layer::layer(
        &weft_middleware::RetryLayer::new(weft_middleware::RetryPolicy::default()),
        lb,
    );
    for i in 0..20 {
        svc.clone().oneshot(support::add(i)).await.unwrap();
    }
    server.abort().await;
}

/// An `/etc/hosts` line added for one test and removed when dropped.
struct HostsEntry {
    original: String,
}

const HOSTS: &str = "/etc/hosts";
const TEST_HOST: &str = "weft-discovery-test.invalid";

impl HostsEntry {
    fn set(ip: Option<&str>) -> HostsEntry {
        let original = std::fs::read_to_string(HOSTS).unwrap();
        let mut entry = HostsEntry { original };
        entry.point(ip);
        entry
    }

    /// Point the test name at `ip`, or remove it.
    fn point(&mut self, ip: Option<&str>) {
        let mut text = self.original.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if let Some(ip) = ip {
            text.push_str(&format!("{ip} {TEST_HOST}\n"));
        }
        // Written in place: /etc/hosts is often a bind mount.
        std::fs::write(HOSTS, text).unwrap();
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        let _ = std::fs::write(HOSTS, &self.original);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etc_hosts_name_is_re_resolved_and_the_last_good_answer_survives_failure() {
    if std::fs::metadata(HOSTS).is_ok_and(|m| m.permissions().readonly()) {
        panic!("{HOSTS} is read-only; this test needs to add an entry (run as root)");
    }
    let mut hosts = HostsEntry::set(Some("127.0.0.2"));
    let discover = DnsDiscover::new(fast()).name("Echo", format!("{TEST_HOST}:7000"));
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(v4(&rx.borrow()), [(tcp([127, 0, 0, 2], 7000), 100)]);

    // The name moves: the next resolution sees it.
    hosts.point(Some("127.0.0.3"));
    wait_for(&rx, "the moved address", |s| {
        v4(s) == [(tcp([127, 0, 0, 3], 7000), 100)]
    })
    .await;

    // The name stops resolving: the last good set stays.
    hosts.point(None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(v4(&rx.borrow()), [(tcp([127, 0, 0, 3], 7000), 100)]);
    drop(hosts);
}

/// What the fake DNS server answers.
const ANSWER_TWO: u8 = 0;
const ANSWER_ONE: u8 = 1;
const ANSWER_SERVFAIL: u8 = 2;

/// A DNS server on loopback UDP that answers SRV queries for
/// `_echo._tcp.weft.test` as `mode` says, counting the failures it sends
/// in `failed`.
async fn fake_dns(ports: [u16; 3], mode: Arc<AtomicU8>, failed: Arc<AtomicUsize>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_authoritative(true)
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true);
            for q in query.queries() {
                reply.add_query(q.clone());
            }
            let name = Name::from_ascii("_echo._tcp.weft.test.").unwrap();
            let target = Name::from_ascii("localhost.").unwrap();
            let srv = |prio, weight, port| {
                Record::from_rdata(
                    name.clone(),
                    0,
                    RData::SRV(SRV::new(prio, weight, port, target.clone())),
                )
            };
            match mode.load(Ordering::SeqCst) {
                ANSWER_TWO => {
                    // Two of priority 10, and a backup of priority 20 that
                    // must not be used.
                    reply.add_answer(srv(10, 5, ports[0]));
                    reply.add_answer(srv(10, 0, ports[1]));
                    reply.add_answer(srv(20, 5, ports[2]));
                }
                ANSWER_ONE => {
                    reply.add_answer(srv(10, 7, ports[2]));
                }
                _ => {
                    reply.set_response_code(ResponseCode::ServFail);
                }
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
            if reply.response_code() == ResponseCode::ServFail {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_ports_and_weights_of_the_best_priority_and_are_re_resolved() {
    let mode = Arc::new(AtomicU8::new(ANSWER_TWO));
    let ports = [7001, 7002, 7003];
    let failed = Arc::new(AtomicUsize::new(0));
    let dns = fake_dns(ports, mode.clone(), failed.clone()).await;
    let mut config = ResolverConfig::new();
    config.add_name_server(NameServerConfig::new(dns, Protocol::Udp));
    let mut builder =
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.cache_size = 0;
    opts.attempts = 1;
    opts.timeout = Duration::from_millis(300);
    let discover = DnsDiscover::new(fast())
        .name("Echo", "_echo._tcp.weft.test")
        .with_resolver(builder.build());
    let rx = discover
        .subscribe_ready("Echo", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        v4(&rx.borrow()),
        [
            (tcp([127, 0, 0, 1], 7001), 5),
            // SRV weight 0 is a small share, not none.
            (tcp([127, 0, 0, 1], 7002), 1),
        ]
    );
    assert!(rx
        .borrow()
        .iter()
        .all(|i| i.tags.get("srv-target").map(|t| t.as_str()) == Some("localhost")));

    // The records change: seen at the next resolution.
    mode.store(ANSWER_ONE, Ordering::SeqCst);
    wait_for(&rx, "the new SRV set", |s| {
        v4(s) == [(tcp([127, 0, 0, 1], 7003), 7)]
    })
    .await;

    // The server fails: the last good set stays.
    // Resolutions run one after another: once a third failure has been
    // answered, the discover has already acted on the first two.
    mode.store(ANSWER_SERVFAIL, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while failed.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed resolution"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(v4(&rx.borrow()), [(tcp([127, 0, 0, 1], 7003), 7)]);
}
