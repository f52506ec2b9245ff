//! tonic 0.14.9's interop server and client (this crate's binaries)
//! against Weft's, both ways, case by case.

use tokio::process::Command;
use weft_grpc_tests::peers::{
    peer_client_against_weft, record_and_assert, weft_client_against_peer, Direction,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_against_weft_server() {
    let results = peer_client_against_weft("tonic", &[], |port, case| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tonic_interop_client"));
        cmd.args([
            "--server_host=127.0.0.1".to_string(),
            format!("--server_port={port}"),
            format!("--test_case={case}"),
        ]);
        cmd
    })
    .await;
    record_and_assert("tonic", Direction::PeerClientWeftServer, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_against_tonic_server() {
    let results = weft_client_against_peer("tonic", &[], |port| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tonic_interop_server"));
        cmd.arg(format!("--port={port}"));
        cmd
    })
    .await;
    record_and_assert("tonic", Direction::WeftClientPeerServer, &results);
}
