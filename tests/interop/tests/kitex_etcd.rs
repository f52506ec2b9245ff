//! Kitex and Weft finding each other through etcd, on a real etcd and real
//! loopback sockets:
//!
//! - a Weft server registers with [`EtcdConfig::kitex`] (Kitex's layout) and
//!   a Kitex client finds it with Kitex's own etcd resolver
//!   (`github.com/kitex-contrib/registry-etcd` v0.2.6) and runs every
//!   `ThriftTest` method, pooled and multiplexed; once the Weft server shuts
//!   down its key is gone;
//! - a Kitex server registers with that registry and a Weft client finds it
//!   with [`EtcdDiscover`] in the same layout and runs every method.
//!
//! etcd is Debian's `etcd-server` (`$WEFT_ETCD` overrides the path), which
//! `scripts/test.sh` installs; the Go program is `cmd/kitex-peer`.

mod support;

use std::{net::TcpListener, path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use support::{cell, peer, run_client, start_server, Cell, EmptyIsAbsent};
use tokio::{process::Command, time::Instant};
use weft::core::{Address, ClientBuilder, ConnectionMode, Instance, ServerBuilder, ServerHandle};
use weft::thrift::{Protocol, ThriftServerCodec, Transport};
use weft_codegen_tests::{
    cross::{self, ThriftTestHandler},
    thrift_test::thrifttest::{
        SecondServiceClient, ThriftTestClient, ThriftTestRequest, ThriftTestResponse,
        ThriftTestServer,
    },
};
use weft_discovery::{
    etcd::{etcd_client, KITEX_ROOT},
    Discover, EtcdConfig, EtcdDiscover, EtcdRegistry,
};
use weft_middleware::balance::{Balance, BalanceConfig};

const PEER: &str = "Kitex v0.16.3 + registry-etcd v0.2.6";
/// The name the Weft server registers as; the Kitex client calls it.
const WEFT_SERVICE: &str = "weft-interop-server";
/// The name the Kitex server registers as; the Weft client looks it up.
const KITEX_SERVICE: &str = "kitex-interop-server";

// ===== etcd =====

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member on free loopback ports, killed when dropped.
struct Etcd {
    _child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    async fn start() -> Result<Etcd, String> {
        let bin = std::env::var_os("WEFT_ETCD")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        if !bin.exists() {
            return Err(format!(
                "etcd not found at {} (apt-get install etcd-server; scripts/test.sh does)",
                bin.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new(&bin)
            .arg("--name=weft-kitex")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=weft-kitex={peer_url}"))
            .arg("--log-level=error")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting etcd: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_millis(500));
            if let Ok(mut c) = etcd_client::Client::connect([&url], Some(opts)).await {
                if c.get("/ready-probe", None).await.is_ok() {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("etcd did not answer within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Etcd {
            _child: child,
            url,
            _dir: dir,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let mut c = etcd_client::Client::connect([&self.url], None)
            .await
            .map_err(|e| e.to_string())?;
        let got = c.get(key, None).await.map_err(|e| e.to_string())?;
        Ok(got
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }
}

// ===== Kitex client → Weft server, found in etcd =====

async fn weft_server_in_etcd(etcd: &Etcd) -> Result<(ServerHandle, String), String> {
    let registry = EtcdRegistry::connect(&[&etcd.url], EtcdConfig::kitex())
        .await
        .map_err(|e| e.to_string())?;
    let builder = ServerBuilder::new()
        .register(
            Arc::new(registry),
            WEFT_SERVICE,
            Instance::new("127.0.0.1:0".parse().unwrap()).with_weight(10),
        )
        .deregister_grace(Duration::from_millis(100))
        .drain_timeout(Duration::from_secs(2));
    let limits = builder.limits_ref().clone();
    let server = builder
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || ThriftServerCodec::<ThriftTestRequest, ThriftTestResponse>::new(&limits),
            ThriftTestServer::new(ThriftTestHandler),
        )
        .await
        .map_err(|e| format!("the Weft server: {e}"))?;
    let key = format!("{KITEX_ROOT}/{WEFT_SERVICE}/{}", server.local_addr());
    Ok((server, key))
}

async fn kitex_client_via_etcd(mode: &'static str) {
    let c = Cell {
        peer: PEER,
        direction: "Kitex client → Weft server",
        transport: if mode == "pool" {
            "TTHeader framed, Kitex pool, found in etcd"
        } else {
            "TTHeader, Kitex mux, found in etcd"
        },
        protocol: "binary",
        check: "every method",
    };
    cell(c, async {
        let etcd = match Etcd::start().await {
            Ok(e) => e,
            Err(e) => return vec![e],
        };
        let (server, key) = match weft_server_in_etcd(&etcd).await {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let addr = server.local_addr().to_string();
        let want = format!(r#"{{"network":"tcp","address":"{addr}","weight":10,"tags":{{}}}}"#);
        match etcd.get(&key).await {
            Ok(Some(v)) if v == want => {}
            other => return vec![format!("etcd key {key}: got {other:?}, want {want}")],
        }
        // No -addr: the only way to the server is through etcd.
        let mut fails = run_client(
            &peer("kitex-peer"),
            &[
                "client",
                "-etcd",
                &etcd.url,
                "-service",
                WEFT_SERVICE,
                "-mode",
                mode,
                "-case",
                "battery",
            ],
        )
        .await;
        server.shutdown().await;
        match etcd.get(&key).await {
            Ok(None) => {}
            other => fails.push(format!(
                "etcd key {key} after the Weft server shut down: {other:?}, want none"
            )),
        }
        fails
    })
    .await;
}

// ===== Weft client → Kitex server, found in etcd =====

async fn weft_client_via_etcd(mode: ConnectionMode) {
    let mux = matches!(mode, ConnectionMode::Multiplexed);
    let c = Cell {
        peer: PEER,
        direction: "Weft client → Kitex server",
        transport: if mux {
            "TTHeader, Weft mux → Kitex mux server, found in etcd"
        } else {
            "TTHeader, Weft pool → Kitex server, found in etcd"
        },
        protocol: "binary",
        check: "every method",
    };
    cell(c, async {
        let etcd = match Etcd::start().await {
            Ok(e) => e,
            Err(e) => return vec![e],
        };
        let mut args = vec!["server", "-etcd", &etcd.url, "-service", KITEX_SERVICE];
        if mux {
            args.push("-mux");
        }
        let server = match start_server(&peer("kitex-peer"), &args).await {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let discover = match EtcdDiscover::connect(&[&etcd.url], EtcdConfig::kitex()).await {
            Ok(d) => d,
            Err(e) => return vec![e.to_string()],
        };
        // Kitex registers a second after it starts serving.
        let mut set = match discover.subscribe(KITEX_SERVICE) {
            Ok(s) => s,
            Err(e) => return vec![e.to_string()],
        };
        let found = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                if let Some(i) = set.borrow_and_update().first() {
                    return Ok(i.clone());
                }
                if set.changed().await.is_err() {
                    return Err("the etcd follower stopped".to_owned());
                }
            }
        })
        .await;
        let inst = match found {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => return vec![e],
            Err(_) => {
                return vec![format!(
                    "the Kitex server never appeared under {KITEX_ROOT}/{KITEX_SERVICE}/"
                )]
            }
        };
        let mut fails = Vec::new();
        let want: Address = server.addr.parse().unwrap();
        if inst.address != want || inst.weight != 10 {
            fails.push(format!(
                "found {} weight {}, want {want} weight 10 (Kitex's default)",
                inst.address, inst.weight
            ));
        }
        let balance = Balance::new(
            &discover,
            KITEX_SERVICE,
            move |i: &Instance| {
                ThriftTestClient::new(
                    ClientBuilder::new(i.address.clone())
                        .mode(mode)
                        .timeout(Duration::from_secs(10)),
                    Transport::TTHeader,
                    Protocol::Binary,
                )
                .into_inner()
            },
            BalanceConfig::default(),
        );
        let balance = match balance {
            Ok(b) => b,
            Err(e) => return vec![e.to_string()],
        };
        let client = ThriftTestClient::from_service(EmptyIsAbsent(balance));
        fails.extend(cross::battery(&client, None::<&SecondServiceClient>).await);
        fails
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kitex_pool_client_finds_weft_server_in_etcd() {
    kitex_client_via_etcd("pool").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kitex_mux_client_finds_weft_server_in_etcd() {
    kitex_client_via_etcd("mux").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_pool_client_finds_kitex_server_in_etcd() {
    weft_client_via_etcd(ConnectionMode::Pooled).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_mux_client_finds_kitex_mux_server_in_etcd() {
    weft_client_via_etcd(ConnectionMode::Multiplexed).await
}
