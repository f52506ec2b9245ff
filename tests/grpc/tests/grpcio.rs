//! grpcio (Python; `grpcio` and `grpcio-tools` 1.85.1, which
//! `scripts/test.sh` installs) against Weft, both ways, case by case: the
//! interop server and client in `tests/grpc/py/`, stubs generated here with
//! `python -m grpc_tools.protoc`. A missing package fails the test.

use std::{path::PathBuf, sync::OnceLock};

use tokio::process::Command;
use weft_grpc_tests::peers::{
    build_ok, peer_client_against_weft, proto_dir, record_and_assert, weft_client_against_peer,
    Direction,
};

/// grpcio's server API tells neither a message's compressed flag nor the
/// request's `grpc-encoding`, so its server cannot refuse the uncompressed
/// probe these cases begin with.
const SERVER_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "client_compressed_unary",
        "grpcio's server cannot see whether a request was compressed",
    ),
    (
        "client_compressed_streaming",
        "grpcio's server cannot see whether a request was compressed",
    ),
];

fn python() -> String {
    std::env::var("WEFT_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The Python stubs, generated once per test binary.
fn stubs() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("grpcio-stubs");
        std::fs::create_dir_all(&out).unwrap();
        let protos = proto_dir();
        let mut cmd = std::process::Command::new(python());
        cmd.args(["-m", "grpc_tools.protoc"])
            .arg(format!("-I{}", protos.display()))
            .arg(format!("--python_out={}", out.display()))
            .arg(format!("--grpc_python_out={}", out.display()))
            .args(["empty.proto", "messages.proto", "test.proto"].map(|p| protos.join(p)));
        build_ok(
            cmd,
            "python -m grpc_tools.protoc (pip install grpcio-tools==1.85.1)",
        );
        out
    })
}

fn py(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("py")
            .join(script),
    )
    .env("WEFT_GRPC_STUBS", stubs());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_against_weft_server() {
    let results = peer_client_against_weft("grpcio", &[], |port, case| {
        let mut cmd = py("interop_client.py");
        cmd.args([
            "--server_host=127.0.0.1".to_string(),
            format!("--server_port={port}"),
            format!("--test_case={case}"),
        ]);
        cmd
    })
    .await;
    record_and_assert("grpcio", Direction::PeerClientWeftServer, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_against_grpcio_server() {
    let results = weft_client_against_peer("grpcio", SERVER_UNSUPPORTED, |port| {
        let mut cmd = py("interop_server.py");
        cmd.arg(format!("--port={port}"));
        cmd
    })
    .await;
    record_and_assert("grpcio", Direction::WeftClientPeerServer, &results);
}
