//! What the polyglot interop tests share: finding the peers that
//! `scripts/interop.sh build` built, starting and running them, and
//! recording each cell of the matrix for the script's table.
//!
//! The peers come from `$WEFT_INTEROP_PEERS` (a directory with `bin/`), or,
//! when that is unset, from running `scripts/interop.sh build` once per test
//! binary (cached, so quick after the first time). A peer that cannot be
//! built or started fails the test.

#![allow(dead_code)] // Each test binary uses part of it.

use std::{
    future::Future,
    io::Write as _,
    path::{Path, PathBuf},
    pin::Pin,
    process::Stdio,
    sync::OnceLock,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
};
use weft::core::{tower::Service, Request, Response, Status};
use weft_codegen_tests::thrift_test::thrifttest::{
    ThriftTestRequest, ThriftTestResponse, ThriftTestTestInsanityResultSend,
};

/// How long a peer server may take to say it listens (a cold JVM is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one peer client run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding the built peers' `bin/`.
pub fn peers() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("WEFT_INTEROP_PEERS") {
            return PathBuf::from(dir);
        }
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/interop.sh"))
            .arg("build")
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/interop.sh build");
        assert!(
            out.status.success(),
            "scripts/interop.sh build failed (the peers are needed, not optional)"
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(stdout.lines().last().expect("the peers' directory").trim())
    })
}

/// The executable of peer `name` (`kitex-peer`, `apache-peer`, `java-peer`).
pub fn peer(name: &str) -> PathBuf {
    let p = peers().join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/interop.sh build",
        p.display()
    );
    p
}

/// A running peer server, killed when dropped.
pub struct PeerServer {
    _child: Child,
    /// Where it listens, `host:port`.
    pub addr: String,
}

/// Start `bin args…` and wait (bounded) for its `listening on ADDR` line.
pub async fn start_server(bin: &Path, args: &[&str]) -> Result<PeerServer, String> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(START_TIMEOUT, async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(rest) = l.strip_prefix("listening on ") {
                return Some(rest.trim().to_string());
            }
        }
        None
    })
    .await;
    let addr = match found {
        Ok(Some(a)) => a,
        Ok(None) => {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
            return Err(format!(
                "server {} exited without listening: {err}",
                bin.display()
            ));
        }
        Err(_) => {
            return Err(format!(
                "server {} did not listen within {START_TIMEOUT:?}",
                bin.display()
            ))
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    if let Some(mut err) = child.stderr.take() {
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink).await;
        });
    }
    Ok(PeerServer {
        _child: child,
        addr,
    })
}

/// Run the peer client `bin args…` to the end (bounded). Returns its
/// failures: each `FAIL …` line it printed, or why it did not run.
pub async fn run_client(bin: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).kill_on_drop(true);
    let out = match tokio::time::timeout(RUN_TIMEOUT, cmd.output()).await {
        Err(_) => return vec![format!("client: no end within {RUN_TIMEOUT:?}")],
        Ok(Err(e)) => return vec![format!("client: starting {}: {e}", bin.display())],
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut fails: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(str::to_owned)
        .collect();
    if !out.status.success() && fails.is_empty() {
        fails.push(format!(
            "client: exited with {}: {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if out.status.success() && !stdout.lines().any(|l| l.starts_with("ok ")) {
        fails.push(format!("client: exited 0 without reporting ok: {stdout}"));
    }
    fails
}

/// One cell of the matrix: who talks to whom, over what.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub peer: &'static str,
    pub direction: &'static str,
    pub transport: &'static str,
    pub protocol: &'static str,
    /// What was checked: `every method`, or a Kitex case.
    pub check: &'static str,
}

/// Run a cell's checks (bounded), record the outcome for the table, and
/// fail the test listing every failure.
pub async fn cell<F>(cell: Cell, checks: F)
where
    F: Future<Output = Vec<String>>,
{
    let fails = match tokio::time::timeout(Duration::from_secs(180), checks).await {
        Ok(f) => f,
        Err(_) => vec!["cell: no end within 180 s".to_owned()],
    };
    record(&cell, &fails);
    assert!(
        fails.is_empty(),
        "{} {} {} {} {}:\n  {}",
        cell.peer,
        cell.direction,
        cell.transport,
        cell.protocol,
        cell.check,
        fails.join("\n  ")
    );
}

/// Append `peer, direction, transport, protocol, check, pass|FAIL, first failure`
/// to `$WEFT_INTEROP_RESULTS` when set (scripts/interop.sh reads it).
fn record(cell: &Cell, fails: &[String]) {
    let Some(path) = std::env::var_os("WEFT_INTEROP_RESULTS") else {
        return;
    };
    let (result, why) = match fails.first() {
        None => ("pass", String::new()),
        Some(f) => (
            "FAIL",
            f.replace(['\t', '\n'], " ").chars().take(160).collect(),
        ),
    };
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        cell.peer, cell.direction, cell.transport, cell.protocol, cell.check, result, why
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening $WEFT_INTEROP_RESULTS");
    // One write per line: O_APPEND keeps lines whole across test threads.
    f.write_all(line.as_bytes()).unwrap();
}

/// Start a Weft cross-test server (`ThriftTest` and `SecondService`, every
/// transport and protocol on one port) on loopback.
pub async fn weft_cross_server() -> (weft::core::ServerHandle, String) {
    let addr: weft::core::Address = "127.0.0.1:0".parse().unwrap();
    let server = weft_codegen_tests::cross::serve(&addr)
        .await
        .expect("the Weft server starts");
    let a = server.local_addr().to_string();
    (server, a)
}

/// Go's Thrift code (Apache's and Kitex's) writes a container field of default requiredness
/// that it holds as nil (`Insanity{}`'s `userMap` and `xtructs`) as an
/// empty container, where Weft, Python and Java leave it out: two encodings
/// of the same empty value. This makes them one before the battery
/// compares `testInsanity`'s answer; everything else passes untouched.
#[derive(Clone)]
pub struct EmptyIsAbsent<S>(pub S);

impl<S> Service<Request<ThriftTestRequest>> for EmptyIsAbsent<S>
where
    S: Service<Request<ThriftTestRequest>, Response = Response<ThriftTestResponse>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response<ThriftTestResponse>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ThriftTestRequest>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if let ThriftTestResponse::TestInsanity(ThriftTestTestInsanityResultSend::Ok(m)) =
                &mut resp.message
            {
                for ins in m.values_mut().flat_map(|inner| inner.values_mut()) {
                    if ins.user_map.as_ref().is_some_and(|m| m.is_empty()) {
                        ins.user_map = None;
                    }
                    if ins.xtructs.as_ref().is_some_and(Vec::is_empty) {
                        ins.xtructs = None;
                    }
                }
            }
            Ok(resp)
        })
    }
}
