//! A real etcd for the tests, on loopback with free ports and a temporary
//! data directory (as `discovery/tests/support` starts one), and reads of
//! the keys servers register under.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use weft_discovery::etcd::etcd_client;

/// The etcd binary: `$WEFT_ETCD`, else Debian's `/usr/bin/etcd`. Missing,
/// the test fails with how to install it.
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

/// A port free now (and, for a "dead etcd" URL, nobody listening on it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member, killed when dropped.
pub struct Etcd {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    /// Start etcd and wait (up to 20 s) until it answers a read.
    pub async fn start() -> Etcd {
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(etcd_binary())
            .arg("--name=weft-ffi-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=weft-ffi-test={peer}"))
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        let mut etcd = Etcd { child, url, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                panic!("etcd exited with {status}; log:\n{}", etcd.log());
            }
            if let Ok(mut c) = etcd_client::Client::connect(
                [&etcd.url],
                Some(etcd_client::ConnectOptions::new().with_timeout(Duration::from_millis(500))),
            )
            .await
            {
                if c.get("/ready-probe", None).await.is_ok() {
                    return etcd;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within 20 s; log:\n{}",
                etcd.log()
            );
            // Polling a condition (etcd answering), bounded by the deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What etcd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The keys under `/weft/services/<service>/`, with their values.
    pub async fn instances(&self, service: &str) -> Vec<(String, String)> {
        let mut c = etcd_client::Client::connect([&self.url], None)
            .await
            .unwrap();
        let prefix = format!("/weft/services/{service}/");
        let resp = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .unwrap();
        resp.kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key_str().unwrap().to_owned(),
                    kv.value_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}
