//! A real etcd for the tests, on loopback with free ports and a temporary
//! data directory, and echo servers that register in it.

#![allow(dead_code, unreachable_pub)]

use std::{
    collections::HashMap,
    net::TcpListener,
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    process::{Child, Command},
    time::Instant,
};
use tower::ServiceExt;
use weft::core::{
    Address, ConnectionMode, Context, Instance, Request, ServerBuilder, ServerHandle,
};
use weft::thrift::{Protocol, Transport};
use weft_discovery::{etcd::etcd_client, EtcdConfig, EtcdRegistry};
use weft_interop::{EchoAddArgsSend, EchoClient, EchoHandler, EchoRequest};

// ===== etcd =====

/// The etcd binary: `$WEFT_ETCD`, else Debian's `/usr/bin/etcd`.
fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("WEFT_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    assert!(
        path.exists(),
        "etcd not found at {} — these tests need a real etcd server. Install it with \
         `apt-get install -y etcd-server` (scripts/test.sh does) or set WEFT_ETCD to its path.",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member, killed when dropped.
pub struct Etcd {
    child: Option<Child>,
    pub url: String,
    peer_url: String,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Start etcd and wait until it answers.
    pub async fn start() -> Etcd {
        // Fail with the install hint before anything else.
        etcd_binary();
        let mut etcd = Etcd {
            child: None,
            url: format!("http://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            dir: tempfile::tempdir().unwrap(),
        };
        etcd.spawn().await;
        etcd
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new(etcd_binary())
            .arg("--name=weft-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", self.url))
            .arg(format!("--advertise-client-urls={}", self.url))
            .arg(format!("--listen-peer-urls={}", self.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer_url))
            .arg(format!("--initial-cluster=weft-test={}", self.peer_url))
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting etcd");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("etcd exited with {status}; log:\n{}", self.log());
            }
            if let Ok(mut c) = etcd_client::Client::connect(
                [&self.url],
                Some(etcd_client::ConnectOptions::new().with_timeout(Duration::from_millis(500))),
            )
            .await
            {
                if c.get("/ready-probe", None).await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within 20 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What etcd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// SIGKILL etcd, as a crash does.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    /// SIGSTOP etcd: it keeps its sockets open and answers nothing, as a
    /// hung or partitioned member does.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT a paused etcd.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("etcd runs");
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// Start it again on the same data directory.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd still runs");
        self.spawn().await;
    }

    /// A plain etcd client, for the test's own reads and writes.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([&self.url], None)
            .await
            .unwrap()
    }
}

// ===== a proxy that can go silent =====

/// A TCP proxy in front of etcd whose connections can be frozen: a frozen
/// connection stays open and forwards nothing either way, as a peer behind
/// a dead NAT mapping or a partition looks. Connections made after a freeze
/// are forwarded.
pub struct SilentProxy {
    pub url: String,
    /// The freeze flags of the connections made so far.
    conns: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentProxy {
    /// Proxy to the etcd at `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> SilentProxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let all = conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let frozen = Arc::new(AtomicBool::new(false));
                all.lock().unwrap().push(frozen.clone());
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pipe(dr, uw, frozen.clone()));
                tokio::spawn(pipe(ur, dw, frozen));
            }
        });
        SilentProxy { url, conns, task }
    }

    /// Freeze every connection made so far.
    pub fn freeze(&self) {
        for f in self.conns.lock().unwrap().iter() {
            f.store(true, Ordering::SeqCst);
        }
    }

    /// How many connections were made so far.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy `from` to `to` until EOF; once `frozen`, hold both open and
/// forward nothing more.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Silent, not closed: keep both halves until the test ends.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

// ===== servers =====

/// Lease TTL of the test servers: short, so that a killed one leaves fast.
pub const TTL: Duration = Duration::from_secs(2);

pub fn config() -> EtcdConfig {
    EtcdConfig {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        ..EtcdConfig::default()
    }
    .lease_ttl(TTL)
}

/// An echo server registered as `Echo` with its own registry (so that
/// aborting it also stops its keep-alives, as a crash would).
pub struct TestServer {
    pub handle: ServerHandle,
    pub handler: EchoHandler,
    pub addr: Address,
}

impl TestServer {
    pub async fn start(etcd: &Etcd, weight: u32) -> TestServer {
        let registry = EtcdRegistry::connect(&[&etcd.url], config()).await.unwrap();
        let handler = EchoHandler::default();
        let builder = ServerBuilder::new()
            .register(
                Arc::new(registry),
                "Echo",
                Instance::new("127.0.0.1:0".parse().unwrap()).with_weight(weight),
            )
            .deregister_grace(Duration::from_millis(500))
            .drain_timeout(Duration::from_secs(2));
        let handle = weft_interop::serve("127.0.0.1:0", builder, handler.clone())
            .await
            .unwrap();
        let addr = handle.local_addr().clone();
        TestServer {
            handle,
            handler,
            addr,
        }
    }

    pub fn calls(&self) -> usize {
        self.handler.calls.load(Ordering::SeqCst)
    }
}

// ===== the client stack and load =====

pub type Endpoint =
    weft::core::Client<weft::thrift::ThriftClientCodec<EchoRequest, weft_interop::EchoResponse>>;

pub fn endpoint(inst: &Instance) -> Endpoint {
    EchoClient::new(
        &inst.address,
        Transport::TTHeader,
        Protocol::Binary,
        ConnectionMode::Multiplexed,
    )
    .inner
}

pub fn add(i: i64) -> Request<EchoRequest> {
    let mut cx = Context::default();
    cx.service = "Echo".into();
    cx.method = "add".into();
    Request::new(cx, EchoRequest::Add(EchoAddArgsSend { a: i, b: 1 }))
}

/// Results of a load run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    pub by: HashMap<Address, usize>,
    pub errors: Vec<String>,
}

/// Calls through `svc` from `tasks` callers, each pausing `pace` between
/// calls, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    pub fn start<S>(svc: S, tasks: usize, pace: Duration) -> Load
    where
        S: tower::Service<
                Request<EchoRequest>,
                Response = weft::core::Response<weft_interop::EchoResponse>,
                Error = weft::core::Status,
            > + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|t| {
                let (svc, stop, ok, failed) =
                    (svc.clone(), stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut i = t as i64 * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        match svc.clone().oneshot(add(i)).await {
                            Ok(r) => {
                                tally.ok += 1;
                                ok.fetch_add(1, Ordering::Relaxed);
                                *tally.by.entry(r.cx.peer.clone().unwrap()).or_insert(0) += 1;
                            }
                            Err(e) => {
                                tally.failed += 1;
                                failed.fetch_add(1, Ordering::Relaxed);
                                if tally.errors.len() < 5 {
                                    tally.errors.push(e.to_string());
                                }
                            }
                        }
                        tokio::time::sleep(pace).await;
                    }
                    tally
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Calls that succeeded so far.
    pub fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Calls that failed so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.tasks {
            let t = t.await.unwrap();
            all.ok += t.ok;
            all.failed += t.failed;
            all.errors.extend(t.errors);
            for (k, v) in t.by {
                *all.by.entry(k).or_insert(0) += v;
            }
        }
        all
    }
}

/// Wait until the async check `f` holds, polling every 50 ms, for at most
/// `limit`.
pub async fn until_async<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `f` holds, polling every 10 ms, for at most `limit`; returns
/// how long it took.
pub async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
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
