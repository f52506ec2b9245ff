//! The harness the peer interop tests share: run every case with a peer's
//! interop client against Weft's server and with Weft's client against the
//! peer's server, one case at a time, and record the outcome per case in
//! `<target>/interop-peers/results/` for `scripts/grpc-interop.sh`'s table.
//!
//! A case the peer does not implement is named with its reason; it is still
//! run, and shows as `n/a-peer` only if it does not pass. Every other case
//! must pass. A peer that cannot be built or started fails the test.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::Command;
use weft::{
    core::{ServerBuilder, ServerHandle},
    protobuf::GrpcServer,
};

use crate::{
    cases::{run, Clients, CASES},
    server::Interop,
    service::TestServiceServer,
};

/// How long one case may take, either way, before it counts as failed.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of one case in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The peer does not implement this case (the reason), and it did not
    /// pass (what happened).
    NaPeer(String),
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::NaPeer(_) => "n/a-peer",
        }
    }
}

/// Which side the peer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer's client against Weft's server.
    PeerClientWeftServer,
    /// Weft's client against the peer's server.
    WeftClientPeerServer,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::PeerClientWeftServer => "client→Weft",
            Direction::WeftClientPeerServer => "Weft→server",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Direction::PeerClientWeftServer => "peer-client",
            Direction::WeftClientPeerServer => "peer-server",
        }
    }
}

/// The workspace's target directory (`$CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Where built peers are cached and results recorded:
/// `<target>/interop-peers` (or `$WEFT_INTEROP_PEERS`).
pub fn peers_dir() -> PathBuf {
    std::env::var_os("WEFT_INTEROP_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("interop-peers"))
}

/// The interop `.proto` files' directory (`grpc/testing/*.proto`).
pub fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/idl/proto/grpc/testing")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start Weft's interop server in process on a free loopback port.
pub async fn start_weft_server() -> ServerHandle {
    TestServiceServer::new(Interop)
        .register(GrpcServer::new())
        .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap())
        .await
        .expect("Weft's interop server starts")
}

/// Run every case with the peer's client against Weft's server; `client`
/// makes the command for one case given the server's port and the case.
pub async fn peer_client_against_weft(
    peer: &str,
    unsupported: &[(&str, &str)],
    client: impl Fn(u16, &str) -> Command,
) -> Vec<(&'static str, Outcome)> {
    let handle = start_weft_server().await;
    let port = handle.local_addr().to_string();
    let port: u16 = port.rsplit(':').next().unwrap().parse().unwrap();
    let mut results = Vec::new();
    for &case in CASES {
        let mut cmd = client(port, case);
        cmd.env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let r = match tokio::time::timeout(CASE_TIMEOUT, cmd.output()).await {
            Err(_) => Err(format!("no end within {CASE_TIMEOUT:?}")),
            Ok(Err(e)) => panic!("{peer}'s interop client does not start: {e}"),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        };
        results.push((case, outcome(case, unsupported, r)));
    }
    handle.shutdown().await;
    results
}

/// Start the peer's server with `server` (given a free port), wait until it
/// accepts connections, and run every case with Weft's client against it.
pub async fn weft_client_against_peer(
    peer: &str,
    unsupported: &[(&str, &str)],
    server: impl FnOnce(u16) -> Command,
) -> Vec<(&'static str, Outcome)> {
    let port = free_port();
    let mut cmd = server(port);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{peer}'s interop server does not start: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{peer}'s interop server exited before serving: {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{peer}'s interop server never accepted a connection on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let clients = Clients::new(format!("127.0.0.1:{port}").parse().unwrap());
    let mut results = Vec::new();
    for &case in CASES {
        let r = match tokio::time::timeout(CASE_TIMEOUT, run(&clients, case)).await {
            Err(_) => Err(format!("no end within {CASE_TIMEOUT:?}")),
            Ok(r) => r.map_err(|e| format!("{e:#}")),
        };
        results.push((case, outcome(case, unsupported, r)));
    }
    if let Some(status) = child.try_wait().unwrap() {
        panic!("{peer}'s interop server died during the cases: {status}");
    }
    child.kill().await.ok();
    results
}

fn outcome(case: &str, unsupported: &[(&str, &str)], r: Result<(), String>) -> Outcome {
    match (r, unsupported.iter().find(|(c, _)| *c == case)) {
        (Ok(()), _) => Outcome::Pass,
        (Err(e), Some((_, why))) => Outcome::NaPeer(format!("{why} ({e})")),
        (Err(e), None) => Outcome::Fail(e),
    }
}

/// Record the results for the table, print them, and fail on any `FAIL`.
pub fn record_and_assert(peer: &str, direction: Direction, results: &[(&str, Outcome)]) {
    let dir = peers_dir().join("results");
    std::fs::create_dir_all(&dir).unwrap();
    let mut tsv = String::new();
    let mut failed = Vec::new();
    for (case, o) in results {
        let detail = match o {
            Outcome::Pass => String::new(),
            Outcome::Fail(d) | Outcome::NaPeer(d) => {
                d.replace(['\t', '\n'], " ").chars().take(600).collect()
            }
        };
        writeln!(
            tsv,
            "{case}\t{peer}\t{}\t{}\t{detail}",
            direction.label(),
            o.word()
        )
        .unwrap();
        println!(
            "{:<30} {peer} {} {} {detail}",
            case,
            direction.label(),
            o.word()
        );
        if let Outcome::Fail(d) = o {
            failed.push(format!("{case}: {d}"));
        }
    }
    let name = format!("{}-{}.tsv", peer.replace(['/', ' '], "_"), direction.file());
    std::fs::write(dir.join(name), tsv).unwrap();
    assert!(
        failed.is_empty(),
        "{peer}, {}: failed cases:\n{}",
        direction.label(),
        failed.join("\n")
    );
}

/// Run a build command to completion, failing loudly (never skipping).
pub fn build_ok(mut cmd: std::process::Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
