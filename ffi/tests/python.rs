//! The Python binding (`ffi/python`) against a Weft Rust echo server:
//! Apache Thrift's generated Python structs round-trip through the shim;
//! and with a real etcd, a Python server registers and Python clients find
//! it; gRPC calls with `grpcio-tools` messages to a Weft Rust gRPC server,
//! and a Python servicer served as gRPC to a grpcio client.
//! Needs `python3` with Apache Thrift's library and `grpcio-tools`, the
//! `thrift` compiler (scripts/test.sh installs them) and etcd (`/usr/bin/etcd`);
//! `WEFT_FFI_SKIP_PY=1` skips it.

#[path = "support/etcd.rs"]
mod etcd;

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use weft_core::{Instance, ServerBuilder};
use weft_discovery::{EtcdConfig, EtcdRegistry};
use weft_interop::EchoHandler;

fn skip() -> bool {
    std::env::var_os("WEFT_FFI_SKIP_PY").is_some()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Run `python/tests/<script>` with this build's library and `env`.
fn run_python(script: &str, env: &[(&str, &str)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python/tests")
        .join(script);
    run_python_at(&script, env);
}

/// Run the Python program at `script`, the binding on its path; returns
/// what it printed.
fn run_python_at(script: &Path, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libweft.so");
    assert!(lib.exists(), "no {}", lib.display());
    let out = Command::new("python3")
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("python"),
        )
        .arg(script)
        .env("WEFT_LIB", &lib)
        .envs(env.iter().copied())
        .output()
        .expect("running python3 (WEFT_FFI_SKIP_PY=1 skips this test)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{stderr}",
        script.display()
    );
    println!("{stderr}");
    stdout.into_owned()
}

/// `ffi/examples/hello.py`: a Python server and client through the shim.
#[test]
fn the_python_example_runs() {
    if skip() {
        return;
    }
    let out = run_python_at(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.py"),
        &[],
    );
    for want in [
        "add(40, 2) = 42",
        "div(1, 0) raised DivByZero: 1 / 0",
        "add(1, 2) = 3",
        "mul: UNIMPLEMENTED",
        "100 asyncio calls, sum = 9900",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
}

#[test]
fn python_binding_calls_a_weft_rust_server() {
    if skip() {
        return;
    }
    let rt = runtime();
    let server = rt
        .block_on(weft_interop::serve(
            "127.0.0.1:0",
            ServerBuilder::new(),
            EchoHandler::default(),
        ))
        .unwrap();
    run_python(
        "test_echo.py",
        &[("WEFT_ECHO_ADDR", &server.local_addr().to_string())],
    );
    rt.block_on(server.shutdown());
}

#[test]
fn python_grpc_calls_with_grpcio_tools_messages_reach_a_weft_rust_grpc_server() {
    if skip() {
        return;
    }
    use weft_interop::grpc::{EchoServer, GrpcEcho};
    let rt = runtime();
    let server = rt
        .block_on(
            EchoServer::new(GrpcEcho).serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
    run_python(
        "test_grpc.py",
        &[("WEFT_GRPC_ADDR", &server.local_addr().to_string())],
    );
    rt.block_on(server.shutdown());
}

/// A Python servicer class (grpcio-tools' generated base and
/// `add_EchoServicer_to_server`) served as gRPC through the shim, called by
/// a real grpcio client and by the binding's gRPC client.
#[test]
fn a_python_servicer_served_as_grpc_answers_grpcio() {
    if skip() {
        return;
    }
    run_python("test_grpc_server.py", &[]);
}

#[test]
fn python_servers_register_in_etcd_and_python_clients_find_them() {
    if skip() {
        return;
    }
    let rt = runtime();
    let etcd = rt.block_on(etcd::Etcd::start());
    let rust = rt.block_on(async {
        let registry = EtcdRegistry::connect(&[&etcd.url], EtcdConfig::default())
            .await
            .unwrap();
        let builder = ServerBuilder::new()
            .register(
                Arc::new(registry),
                "EchoRustPy",
                Instance::new("127.0.0.1:0".parse().unwrap()),
            )
            .deregister_grace(Duration::ZERO);
        weft_interop::serve("127.0.0.1:0", builder, EchoHandler::default())
            .await
            .unwrap()
    });
    run_python(
        "test_etcd.py",
        &[
            ("WEFT_ETCD_URL", &etcd.url),
            ("WEFT_ETCD_RUST_SERVICE", "EchoRustPy"),
        ],
    );
    rt.block_on(async {
        assert!(etcd.instances("EchoPy").await.is_empty());
        rust.shutdown().await;
    });
}

/// The shim from Python beside Apache Thrift's own Python client
/// (`TSocket` + `TFramedTransport` + `TBinaryProtocol`) against the same
/// Weft Rust echo server, in one run (`ffi/python/tests/bench.py`). Long,
/// so behind `WEFT_FFI_BENCH=1`; run it in release:
/// `WEFT_FFI_BENCH=1 cargo test --release -p weft-ffi --test python python_bench -- --nocapture`
/// (`WEFT_FFI_BENCH_D`: seconds per cell, default 3;
/// `WEFT_FFI_BENCH_PROFILE=1`: a cProfile of the shim's cells instead).
#[test]
fn python_bench() {
    if skip() || std::env::var_os("WEFT_FFI_BENCH").is_none() {
        return;
    }
    let rt = runtime();
    let server = rt
        .block_on(weft_interop::serve(
            "127.0.0.1:0",
            ServerBuilder::new(),
            EchoHandler::default(),
        ))
        .unwrap();
    let out = run_python_at(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests/bench.py"),
        &[
            ("WEFT_ECHO_ADDR", &server.local_addr().to_string()),
            ("PYTHONUNBUFFERED", "1"),
        ],
    );
    println!("{out}");
    if std::env::var_os("WEFT_FFI_BENCH_PROFILE").is_none() {
        assert!(out.contains("python_bench:"), "{out}");
    }
    rt.block_on(server.shutdown());
}
