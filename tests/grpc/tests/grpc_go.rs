//! grpc-go's official interop client and server (`google.golang.org/grpc/interop/client`
//! and `…/interop/server`, built once with the Go toolchain and cached under
//! `<target>/interop-peers/`) against Weft's, both ways, case by case.
//!
//! Needs `go`; the module proxy supplies grpc-go. A build failure fails the
//! test.

use std::{path::PathBuf, sync::OnceLock};

use tokio::process::Command;
use weft_grpc_tests::peers::{
    build_ok, peer_client_against_weft, peers_dir, record_and_assert, weft_client_against_peer,
    Direction,
};

const GRPC_GO: &str = "v1.85.0";

/// The cases grpc-go's interop client does not implement: it exits with
/// "Unsupported test case".
const CLIENT_UNSUPPORTED: &[(&str, &str)] = &[
    ("client_compressed_unary", "grpc-go's client lacks the case"),
    ("server_compressed_unary", "grpc-go's client lacks the case"),
    (
        "client_compressed_streaming",
        "grpc-go's client lacks the case",
    ),
    (
        "server_compressed_streaming",
        "grpc-go's client lacks the case",
    ),
];

/// grpc-go's server ignores `expect_compressed`: it answers the
/// uncompressed probe with success where the descriptions require
/// `INVALID_ARGUMENT`.
const SERVER_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "client_compressed_unary",
        "grpc-go's server ignores expect_compressed",
    ),
    (
        "client_compressed_streaming",
        "grpc-go's server ignores expect_compressed",
    ),
];

/// grpc-go's interop client and server binaries, built once (both tests
/// wait on the one build).
fn grpc_go() -> (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(build_grpc_go).clone()
}

fn build_grpc_go() -> (PathBuf, PathBuf) {
    let bin = peers_dir().join(format!("grpc-go-{GRPC_GO}"));
    let (client, server) = (bin.join("client"), bin.join("server"));
    if !(client.is_file() && server.is_file()) {
        std::fs::create_dir_all(&bin).unwrap();
        let mut cmd = std::process::Command::new("go");
        cmd.arg("install")
            .arg(format!("google.golang.org/grpc/interop/client@{GRPC_GO}"))
            .arg(format!("google.golang.org/grpc/interop/server@{GRPC_GO}"))
            .env("GOBIN", &bin)
            // Outside any module, so `go install pkg@version` is used as is.
            .current_dir(std::env::temp_dir());
        build_ok(cmd, "go install grpc-go's interop client and server");
    }
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_go_client_against_weft_server() {
    let (client, _) = grpc_go();
    let results = peer_client_against_weft("grpc-go", CLIENT_UNSUPPORTED, |port, case| {
        let mut cmd = Command::new(&client);
        cmd.args([
            "--server_host=127.0.0.1".to_string(),
            format!("--server_port={port}"),
            format!("--test_case={case}"),
            "--use_tls=false".to_string(),
        ]);
        cmd
    })
    .await;
    record_and_assert("grpc-go", Direction::PeerClientWeftServer, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_against_grpc_go_server() {
    let (_, server) = grpc_go();
    let results = weft_client_against_peer("grpc-go", SERVER_UNSUPPORTED, |port| {
        let mut cmd = Command::new(&server);
        cmd.args([format!("--port={port}"), "--use_tls=false".to_string()]);
        cmd
    })
    .await;
    record_and_assert("grpc-go", Direction::WeftClientPeerServer, &results);
}
