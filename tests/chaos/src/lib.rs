//! Support for Weft's chaos test: a real etcd on loopback, and the
//! `chaos-server` processes that register in it, each of which can be
//! killed, restarted on its port, paused and resumed by signal.
//!
//! A server reports every `add` it runs as a `RAN <id>` line on its standard
//! output, written before the answer is sent, so that the executions of a
//! process killed with SIGKILL are counted too; the test reads these lines
//! into one ledger for all servers.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use weft::discovery::{etcd::etcd_client, EtcdConfig};

/// The registration lease TTL of the servers: short, so that the etcd
/// outage can outlast it within a 15 s run.
pub const TTL: Duration = Duration::from_secs(2);

/// The etcd settings of both servers and client: quick retries, bounded
/// requests, the short [`TTL`].
pub fn etcd_config() -> EtcdConfig {
    EtcdConfig {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        ..EtcdConfig::default()
    }
    .lease_ttl(TTL)
}

/// A free loopback port (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

// ===== etcd =====

/// The etcd binary: `$WEFT_ETCD`, else Debian's `/usr/bin/etcd`.
fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("WEFT_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
    assert!(
        path.exists(),
        "etcd not found at {} — the chaos test needs a real etcd server. Install it with \
         `apt-get install -y etcd-server` (scripts/test.sh does) or set WEFT_ETCD to its path.",
        path.display()
    );
    path
}

/// One etcd member on loopback with a temporary data directory, killed
/// when dropped.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    /// Its client URL.
    pub url: String,
    peer_url: String,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Start etcd and wait (up to 20 s) until it answers.
    pub async fn start() -> Etcd {
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
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new(etcd_binary())
            .arg("--name=weft-chaos")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", self.url))
            .arg(format!("--advertise-client-urls={}", self.url))
            .arg(format!("--listen-peer-urls={}", self.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer_url))
            .arg(format!("--initial-cluster=weft-chaos={}", self.peer_url))
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("etcd exited with {status}; log:\n{}", self.log());
            }
            if self.keys("/ready-probe").await.is_some() {
                return;
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

    /// SIGKILL etcd, as a crash does, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A paused etcd dies of SIGKILL as well.
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGSTOP etcd: it holds its sockets and answers nothing, as a hung
    /// member does; when it resumes, the leases that ran out meanwhile
    /// expire at once.
    pub fn pause(&self) {
        signal(self.child.as_ref().expect("etcd runs").id(), "-STOP");
    }

    /// SIGCONT a paused etcd.
    pub fn resume(&self) {
        signal(self.child.as_ref().expect("etcd runs").id(), "-CONT");
    }

    /// Start it again on the same ports and data directory.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd still runs");
        self.spawn().await;
    }

    /// How many keys are under `prefix`, or `None` when etcd does not
    /// answer within a second.
    pub async fn keys(&self, prefix: &str) -> Option<usize> {
        let opts = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_millis(1000))
            .with_connect_timeout(Duration::from_millis(500));
        let mut c = etcd_client::Client::connect([&self.url], Some(opts))
            .await
            .ok()?;
        let r = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .ok()?;
        Some(r.kvs().len())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

// ===== servers =====

/// Executions of `add` by call id, over every server process.
pub type Ledger = Arc<Mutex<HashMap<i64, u32>>>;

/// One `chaos-server` process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The port it serves and registered.
    pub port: u16,
    reader: Option<JoinHandle<(u64, Option<u64>)>>,
}

impl Server {
    /// Start `chaos-server` at `bin` registering in the etcd at `etcd` on
    /// `port` (0: any), and wait (up to 20 s) until it serves and is
    /// registered. Its `RAN` lines go into `ledger`.
    pub fn start(bin: &str, etcd: &str, port: u16, ledger: &Ledger) -> Server {
        let mut child = Command::new(bin)
            .args([etcd, &port.to_string(), &TTL.as_secs().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting chaos-server");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let ledger = ledger.clone();
        // The reader owns the output for the process's life: the ledger
        // lines, then `DONE n` (the executions it counted) if it stops
        // gracefully. It returns the lines it read and that count (`None`
        // after a kill).
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let mut port_tx = Some(tx);
            let mut ran = 0;
            loop {
                line.clear();
                if out.read_line(&mut line).unwrap_or(0) == 0 {
                    return (ran, None);
                }
                let mut words = line.split_whitespace();
                match (words.next(), words.next().map(str::parse::<u64>)) {
                    (Some("RAN"), Some(Ok(id))) => {
                        ran += 1;
                        *ledger.lock().unwrap().entry(id as i64).or_default() += 1;
                    }
                    (Some("READY"), Some(Ok(port))) => {
                        if let Some(tx) = port_tx.take() {
                            let _ = tx.send(port as u16);
                        }
                    }
                    (Some("DONE"), Some(Ok(n))) => return (ran, Some(n)),
                    _ => eprintln!("chaos-server: {}", line.trim_end()),
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                panic!("chaos-server did not say READY within 20 s: {e}");
            }
        };
        Server {
            child,
            port,
            reader: Some(reader),
        }
    }

    /// SIGKILL it (no deregistration: its lease expires) and wait for its
    /// output to end.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let _ = self.reader.take().unwrap().join();
    }

    /// SIGSTOP: its sockets stay open, it answers nothing and its lease
    /// keep-alives stop.
    pub fn pause(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// SIGCONT a paused server.
    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// Stop it gracefully (standard input closes: it deregisters, drains,
    /// exits) within 20 s, and return how many `add`s it reported, line by
    /// line, and how many it counted itself.
    pub fn finish(mut self) -> (u64, u64) {
        drop(self.child.stdin.take());
        let until = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "chaos-server did not stop in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (lines, done) = self.reader.take().unwrap().join().unwrap();
        (lines, done.expect("chaos-server said DONE"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
