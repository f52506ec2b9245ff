//! The Go binding (`ffi/go`): `go test -race ./...` against Weft Rust
//! servers this test starts, and a Go server the tests start answering a
//! Weft Rust client (the relay). Needs the Go toolchain (scripts/test.sh
//! puts /usr/local/go/bin on PATH); without it the test fails.

#[path = "support/etcd.rs"]
mod etcd;
mod support;

use std::{sync::Arc, time::Instant};

use support::{go, DeadlineReporter, Relay};
use weft_core::{Address, Instance, ServerBuilder};
use weft_discovery::{EtcdConfig, EtcdRegistry};

#[test]
fn go_binding_tests_pass_with_the_race_detector() {
    let rt = support::runtime();
    let dir = std::env::temp_dir().join(format!("weft-ffi-go-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let go_server = format!("unix:{}", dir.join("go-server.sock").display());
    let (echo, relay) = rt.block_on(async {
        let echo = support::serve("127.0.0.1:0", DeadlineReporter::default()).await;
        // Connections are made by the first call, once the Go test listens.
        let relay = support::serve(
            "127.0.0.1:0",
            Relay::to(&go_server.parse::<Address>().unwrap()),
        )
        .await;
        (echo, relay)
    });
    // A real etcd, and a Weft Rust server registered in it, for the Go
    // etcd test.
    let etcd = rt.block_on(etcd::Etcd::start());
    let registered = rt.block_on(async {
        let registry = EtcdRegistry::connect(&[&etcd.url], EtcdConfig::default())
            .await
            .unwrap();
        let builder = ServerBuilder::new()
            .register(
                Arc::new(registry),
                "EchoRustGo",
                Instance::new("127.0.0.1:0".parse().unwrap()),
            )
            .deregister_grace(std::time::Duration::ZERO);
        weft_interop::serve("127.0.0.1:0", builder, weft_interop::EchoHandler::default())
            .await
            .unwrap()
    });
    let grpc = rt
        .block_on(
            weft_interop::grpc::EchoServer::new(weft_interop::grpc::GrpcEcho)
                .serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
    let start = Instant::now();
    let out = go(&["test", "-race", "-count=1", "-v", "./..."])
        .env("WEFT_GRPC_ADDR", grpc.local_addr().to_string())
        .env("WEFT_ETCD_URL", &etcd.url)
        .env("WEFT_ETCD_RUST_SERVICE", "EchoRustGo")
        .env("WEFT_ECHO_ADDR", echo.local_addr().to_string())
        .env("WEFT_RELAY_ADDR", relay.local_addr().to_string())
        .env("WEFT_GO_SERVER_ADDR", &go_server)
        .output()
        .expect("running go test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}\n(go test took {:?})", start.elapsed());
    assert!(out.status.success(), "go test failed:\n{stdout}\n{stderr}");
    rt.block_on(async {
        assert!(etcd.instances("EchoGo").await.is_empty());
        registered.shutdown().await;
        grpc.shutdown().await;
        relay.shutdown().await;
        echo.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Echo code in `ffi/go/internal/gen/echo` is what `thrift --gen go`
/// makes of `tests/interop/idl/echo.thrift` (regenerate with `go generate
/// ./internal/gen` in ffi/go).
#[test]
fn generated_go_code_is_current() {
    let dir = std::env::temp_dir().join(format!("weft-ffi-go-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let idl = support::go_dir().join("../../tests/interop/idl/echo.thrift");
    let status = std::process::Command::new("thrift")
        .arg("--gen")
        .arg("go:package_prefix=github.com/weft-rpc/weft/ffi/go/internal/gen/,skip_remote")
        .arg("-out")
        .arg(&dir)
        .arg(&idl)
        .status()
        .expect("running thrift (Debian's thrift-compiler; scripts/test.sh installs it)");
    assert!(status.success());
    let gofmt = gofmt_bin();
    let status = std::process::Command::new(gofmt)
        .arg("-w")
        .arg(dir.join("echo"))
        .status()
        .unwrap();
    assert!(status.success());
    let checked_in = support::go_dir().join("internal/gen/echo");
    for entry in std::fs::read_dir(dir.join("echo")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let want = std::fs::read_to_string(&path).unwrap();
        let got = std::fs::read_to_string(checked_in.join(name)).unwrap_or_default();
        assert!(
            got == want,
            "ffi/go/internal/gen/echo/{} drifted from the IDL: run `go generate ./internal/gen` in ffi/go",
            name.to_string_lossy()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn gofmt_bin() -> &'static str {
    if std::path::Path::new("/usr/local/go/bin/gofmt").exists() {
        "/usr/local/go/bin/gofmt"
    } else {
        "gofmt"
    }
}

#[test]
fn go_code_is_gofmt_clean_and_vets() {
    let out = go(&["vet", "./..."]).output().expect("running go vet");
    assert!(
        out.status.success(),
        "go vet:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gofmt = support::go_dir();
    let out = std::process::Command::new(gofmt_bin())
        .arg("-l")
        .arg(&gofmt)
        .output()
        .expect("running gofmt");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "not gofmt-clean:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `WEFT_FFI_BENCH=1 cargo test -p weft-ffi --release --test go go_bench --
/// --nocapture`: QPS of Go calls through the shim and of Apache Thrift's
/// own Go client against the same Weft Rust echo server, in one run
/// (`WEFT_FFI_BENCH_C` goroutines, default 16; `WEFT_FFI_BENCH_D` per
/// cell, default 3s; more flags in `WEFT_FFI_BENCH_ARGS`, e.g. `-only shim
/// -cpuprofile /tmp/cpu.out`). Skipped without `WEFT_FFI_BENCH`.
#[test]
fn go_bench() {
    if std::env::var_os("WEFT_FFI_BENCH").is_none() {
        return;
    }
    let bin = support::lib_dir().join("go-bench");
    let out = go(&["build", "-o"])
        .arg(&bin)
        .arg("./internal/cmd/bench")
        .output()
        .expect("running go build");
    assert!(
        out.status.success(),
        "go build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = support::runtime();
    let server = rt.block_on(support::serve(
        "127.0.0.1:0",
        weft_interop::EchoHandler::default(),
    ));
    let c = std::env::var("WEFT_FFI_BENCH_C").unwrap_or_else(|_| "16".into());
    let d = std::env::var("WEFT_FFI_BENCH_D").unwrap_or_else(|_| "3s".into());
    let out = std::process::Command::new(&bin)
        .args([
            "-addr",
            &server.local_addr().to_string(),
            "-c",
            &c,
            "-d",
            &d,
        ])
        .args(
            std::env::var("WEFT_FFI_BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("LD_LIBRARY_PATH", support::lib_dir())
        .output()
        .expect("running the Go bench");
    println!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the Go bench failed");
    rt.block_on(server.shutdown());
}

/// `ffi/examples/go`: a Go server and client through the shim, a module of
/// its own that uses the binding as a program outside it would.
#[test]
fn the_go_example_runs() {
    let dir = support::go_dir().join("../examples/go");
    let vet = go(&["vet", "."])
        .current_dir(&dir)
        .output()
        .expect("running go vet");
    assert!(
        vet.status.success(),
        "go vet on the example:\n{}",
        String::from_utf8_lossy(&vet.stderr)
    );
    let gofmt = std::process::Command::new(gofmt_bin())
        .arg("-l")
        .arg(&dir)
        .output()
        .expect("running gofmt");
    assert!(
        gofmt.status.success() && gofmt.stdout.is_empty(),
        "the example is not gofmt-clean:\n{}",
        String::from_utf8_lossy(&gofmt.stdout)
    );
    let out = go(&["run", "."])
        .current_dir(&dir)
        .output()
        .expect("running go run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Go example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("add(40, 2) = 42"), "{stdout}");
    assert!(
        stdout.contains("sub(40, 2): UNIMPLEMENTED - weft: UNIMPLEMENTED: only add here"),
        "{stdout}"
    );
}
