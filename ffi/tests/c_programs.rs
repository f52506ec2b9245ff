//! The C programs in `tests/c/`, compiled with gcc under AddressSanitizer
//! (LeakSanitizer on) and UndefinedBehaviorSanitizer against the library
//! this build made, run over loopback against Weft Rust servers and clients.
//!
//! gcc must be installed; set `WEFT_FFI_SKIP_C=1` to skip these tests on a
//! machine without it (they fail otherwise, rather than pass silently).

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[path = "support/etcd.rs"]
mod etcd;

use weft_core::{Address, Code, ConnectionMode, Context, Instance, ServerBuilder, ServerHandle};
use weft_interop::{EchoClient, EchoHandler};
use weft_thrift::{Protocol, Transport};

fn skip() -> bool {
    std::env::var_os("WEFT_FFI_SKIP_C").is_some()
}

/// Where cargo put the `libweft.so` of this build: beside the test binary,
/// in `<target>/<profile>/deps` (`cargo test` does not copy it up to
/// `<target>/<profile>`, where an older one from `cargo build` may lie).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_path_buf();
    assert!(
        dir.join("libweft.so").exists(),
        "no libweft.so in {}",
        dir.display()
    );
    dir
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compile `tests/c/<name>.c` with the sanitizers; returns the binary.
fn compile(name: &str) -> PathBuf {
    compile_with(&manifest().join("tests/c").join(format!("{name}.c")), true)
}

/// Compile `src`, with the sanitizers or optimised without them.
fn compile_with(src: &Path, sanitize: bool) -> PathBuf {
    let lib = lib_dir();
    let stem = src.file_stem().unwrap().to_string_lossy();
    let out = lib.join(format!("c-test-{stem}"));
    let flags: &[&str] = if sanitize {
        &[
            "-O1",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
        ]
    } else {
        &["-O2"]
    };
    let status = Command::new("gcc")
        .args([
            "-std=c11",
            "-D_GNU_SOURCE",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg("-Wno-unused-function")
        .args(flags)
        .arg("-I")
        .arg(manifest().join("tests/c"))
        .arg("-I")
        .arg(manifest().join("include"))
        .arg(src)
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        // RPATH, not RUNPATH: cargo's LD_LIBRARY_PATH names directories
        // that may hold an older libweft.so, and RUNPATH yields to it.
        .arg("-Wl,--disable-new-dtags")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lweft", "-lpthread"])
        .status()
        .expect("running gcc (set WEFT_FFI_SKIP_C=1 to skip the C tests)");
    assert!(status.success(), "gcc failed on {}", src.display());
    out
}

fn sanitized(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_LIBRARY_PATH")
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:abort_on_error=0",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .env("LSAN_OPTIONS", "exitcode=23")
}

fn run(bin: &Path, args: &[&str]) -> String {
    let out = sanitized(&mut Command::new(bin))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{stderr}",
        bin.display(),
        out.status
    );
    stdout
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn echo_server(addr: &str) -> ServerHandle {
    weft_interop::serve(addr, ServerBuilder::new(), EchoHandler::default())
        .await
        .unwrap()
}

#[test]
fn a_c_client_calls_a_weft_rust_server() {
    if skip() {
        return;
    }
    let bin = compile("client");
    let rt = runtime();
    let tcp = rt.block_on(echo_server("127.0.0.1:0"));
    let path = std::env::temp_dir().join(format!("weft-ffi-c-client-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let unix = rt.block_on(echo_server(&format!("unix:{}", path.display())));
    let out = run(
        &bin,
        &[
            &tcp.local_addr().to_string(),
            &unix.local_addr().to_string(),
        ],
    );
    assert!(out.contains("all checks passed"), "{out}");
    rt.block_on(async {
        tcp.shutdown().await;
        unix.shutdown().await;
    });
    let _ = std::fs::remove_file(&path);
}

#[test]
fn ten_thousand_calls_from_eight_c_threads() {
    if skip() {
        return;
    }
    let bin = compile("threads");
    let rt = runtime();
    let server = rt.block_on(echo_server("127.0.0.1:0"));
    let out = run(&bin, &[&server.local_addr().to_string()]);
    assert!(out.contains("10000 calls from 8 threads"), "{out}");
    println!("{out}");
    rt.block_on(server.shutdown());
}

#[test]
fn null_freed_and_foreign_handles_are_refused_from_c() {
    if skip() {
        return;
    }
    let bin = compile("hostile");
    let out = run(&bin, &[]);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn the_c_example_runs() {
    if skip() {
        return;
    }
    let bin = compile_with(&manifest().join("examples/hello.c"), true);
    let out = run(&bin, &[]);
    assert!(out.contains("add(40, 2) = 42"), "{out}");
    assert!(
        out.contains("sub(40, 2): UNIMPLEMENTED (only add here)"),
        "{out}"
    );
}

/// The C server process, its address, and its stdin to stop it.
struct CServer {
    child: std::process::Child,
    addr: Address,
}

impl CServer {
    fn start(bin: &Path) -> CServer {
        let mut child = sanitized(&mut Command::new(bin))
            .arg("127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the C server said {line:?}"))
            .parse()
            .unwrap();
        CServer { child, addr }
    }

    /// Stop it gracefully; returns what it printed.
    fn stop(mut self) -> String {
        writeln!(self.child.stdin.as_mut().unwrap(), "quit").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the C server failed ({}): {stdout}",
            out.status
        );
        stdout
    }
}

fn counter(out: &str, name: &str) -> i64 {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .parse()
        .unwrap()
}

fn cx() -> Context {
    Context::new("Echo", "")
}

fn timed(ms: u64) -> Context {
    let mut cx = cx();
    cx.set_timeout(Duration::from_millis(ms));
    cx
}

#[test]
fn a_c_server_answers_weft_rust_clients_and_garbage_gets_typed_errors() {
    if skip() {
        return;
    }
    let bin = compile("server");
    let server = CServer::start(&bin);
    let rt = runtime();
    let addr = server.addr.clone();
    let out = rt.block_on(async {
        for (transport, protocol, mode) in [
            (
                Transport::TTHeader,
                Protocol::Binary,
                ConnectionMode::Multiplexed,
            ),
            (
                Transport::TTHeader,
                Protocol::Compact,
                ConnectionMode::Multiplexed,
            ),
            (Transport::Framed, Protocol::Compact, ConnectionMode::Pooled),
            (
                Transport::Buffered,
                Protocol::Binary,
                ConnectionMode::Pooled,
            ),
            (
                Transport::THeader,
                Protocol::Binary,
                ConnectionMode::Multiplexed,
            ),
        ] {
            let c = EchoClient::new(&addr, transport, protocol, mode);
            assert_eq!(
                c.add(cx(), 40, 2).await.unwrap(),
                42,
                "{transport:?} {protocol:?}"
            );
            assert_eq!(c.add(cx(), 1 << 40, -3).await.unwrap(), (1 << 40) - 3);
        }

        let c = EchoClient::new(
            &addr,
            Transport::TTHeader,
            Protocol::Binary,
            ConnectionMode::Multiplexed,
        );
        // A declared exception, answered with weft_responder_exception.
        let e = c.fail(cx(), 7, "sold out").await.unwrap().unwrap_err();
        assert_eq!((e.code, e.message.as_deref()), (Some(7), Some("sold out")));
        c.ping(cx()).await.unwrap();

        // Metainfo in (persistent, and transient as upstream) and backward out.
        let mut m = cx();
        m.metainfo.persistent.insert("tenant", "blue");
        m.metainfo.transient.insert("hop", "one");
        let (v, back) = c.metainfo(m.clone(), "tenant").await.unwrap();
        assert_eq!(v, "blue");
        assert_eq!(back.metainfo.backward.get("echo-tenant").unwrap(), "blue");
        let (v, back) = c.metainfo(m, "hop").await.unwrap();
        assert_eq!(v, "one");
        assert_eq!(back.metainfo.backward.get("echo-hop").unwrap(), "one");

        // Garbage as the reply: refused in C, INTERNAL here.
        let e = c.add(cx(), -1, 0).await.unwrap_err();
        assert_eq!(e.code(), Code::Internal, "{e}");
        assert!(e.message().contains("garbage"), "{e}");
        // Never answered: the deadline ends it, quickly.
        let t0 = Instant::now();
        let e = c.add(timed(200), -2, 0).await.unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        // Answered twice: the first answer counts.
        assert_eq!(c.add(cx(), -3, 10).await.unwrap(), 7);
        // A code outside the set: UNKNOWN.
        let e = c.add(cx(), -4, 0).await.unwrap_err();
        assert_eq!(e.code(), Code::Unknown, "{e}");
        // The responder freed unanswered: INTERNAL.
        let e = c.add(cx(), -5, 0).await.unwrap_err();
        assert_eq!(e.code(), Code::Internal, "{e}");
        assert!(e.message().contains("without answering"), "{e}");
        // An error code of the set travels as itself.
        let e = c.add(cx(), -7, 0).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::ResourceExhausted, "busy"));
        // Answers later from other threads, concurrently.
        let t0 = Instant::now();
        let late = futures_join((0..20).map(|i| {
            let c = c.clone();
            async move { c.add(cx(), -6, 100 + i).await }
        }))
        .await;
        for (i, r) in late.into_iter().enumerate() {
            assert_eq!(r.unwrap(), 100 + i as i64);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "late answers ran one at a time"
        );
        // Unknown method: UNIMPLEMENTED from the dispatcher.
        let e = c.slow(cx(), Default::default(), 1).await.unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "{e}");
        // Many at once.
        let many = futures_join((0..500).map(|i| {
            let c = c.clone();
            async move { c.add(cx(), i, i).await }
        }))
        .await;
        for (i, r) in many.into_iter().enumerate() {
            assert_eq!(r.unwrap(), 2 * i as i64);
        }
        // A graceful shutdown while a call waits for its late answer: the
        // call is drained, not dropped.
        let in_flight = tokio::spawn({
            let c = c.clone();
            async move { c.add(cx(), -6, 400).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = tokio::task::spawn_blocking(move || server.stop());
        assert_eq!(in_flight.await.unwrap().unwrap(), 400);
        stopped.await.unwrap()
    });
    assert_eq!(counter(&out, "garbage_refused"), 1, "{out}");
    assert_eq!(counter(&out, "twice_refused"), 1, "{out}");
    assert_eq!(counter(&out, "bad_code_refused"), 1, "{out}");
    assert_eq!(counter(&out, "late_answered"), 21, "{out}");
    assert_eq!(counter(&out, "failures"), 0, "{out}");
}

/// etcd through the shim, with a real etcd: a C server registers as it
/// serves (and refuses to serve when etcd is down), C clients find it and a
/// Rust-registered server through etcd, a Weft Rust client finds the C
/// server through etcd, and the key is gone once the C server shut down.
#[test]
fn etcd_registration_and_discovery_from_c() {
    if skip() {
        return;
    }
    use weft_discovery::{EtcdConfig, EtcdDiscover, EtcdRegistry};
    let bin = compile("etcd");
    let rt = runtime();
    let etcd = rt.block_on(etcd::Etcd::start());
    let rust = rt.block_on(async {
        let registry = EtcdRegistry::connect(&[&etcd.url], EtcdConfig::default())
            .await
            .unwrap();
        let builder = ServerBuilder::new()
            .register(
                std::sync::Arc::new(registry),
                "EchoRust",
                Instance::new("127.0.0.1:0".parse().unwrap()),
            )
            .deregister_grace(Duration::ZERO);
        weft_interop::serve("127.0.0.1:0", builder, EchoHandler::default())
            .await
            .unwrap()
    });
    let dead = format!("http://127.0.0.1:{}", etcd::free_port());
    let mut child = sanitized(&mut Command::new(&bin))
        .args([&etcd.url, "EchoRust", "EchoC", &dead])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: Address = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the C program said {line:?}"))
        .parse()
        .unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the C program said {line:?}");

    let key = format!("/weft/services/EchoC/{addr}");
    rt.block_on(async {
        let registered = etcd.instances("EchoC").await;
        assert_eq!(registered.len(), 1, "{registered:?}");
        assert_eq!(registered[0].0, key);
        assert!(registered[0].1.contains("\"weight\":50"), "{registered:?}");

        // A Weft Rust client, balancing over what etcd holds.
        let discover = EtcdDiscover::connect(&[&etcd.url], EtcdConfig::default())
            .await
            .unwrap();
        let _ready = discover
            .subscribe_ready("EchoC", Duration::from_secs(5))
            .await
            .unwrap();
        let client = weft_middleware::ClientStack::new()
            .build(&discover, "EchoC", |i: &Instance| {
                EchoClient::new(
                    &i.address,
                    Transport::TTHeader,
                    Protocol::Binary,
                    ConnectionMode::Multiplexed,
                )
                .inner
            })
            .unwrap();
        for i in 0..10 {
            use tower::ServiceExt;
            let req = weft_core::Request::new(
                Context::new("Echo", "add"),
                weft_interop::EchoRequest::Add(weft_interop::EchoAddArgsSend { a: i, b: 100 }),
            );
            let resp = client.clone().oneshot(req).await.unwrap();
            match resp.message {
                weft_interop::EchoResponse::Add(weft_interop::EchoAddResultSend::Ok(v)) => {
                    assert_eq!(v, i + 100)
                }
                other => panic!("{other:?}"),
            }
        }
    });

    writeln!(child.stdin.as_mut().unwrap(), "quit").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the C program failed ({status}):\n{rest}");
    assert!(rest.contains("all checks passed"), "{rest}");
    // The shutdown deregistered before it returned: no lease expiry waited for.
    rt.block_on(async {
        let left = etcd.instances("EchoC").await;
        assert!(left.is_empty(), "still registered after shutdown: {left:?}");
        rust.shutdown().await;
        assert!(etcd.instances("EchoRust").await.is_empty());
    });
}

/// gRPC through the shim: a C client's unary calls (hand-encoded protobuf
/// messages) to a Weft Rust gRPC server, tests/interop's echo.proto.
#[test]
fn a_c_grpc_client_calls_a_weft_rust_grpc_server() {
    if skip() {
        return;
    }
    use weft_interop::grpc::{EchoServer, GrpcEcho};
    let bin = compile("grpc");
    let rt = runtime();
    let server = rt
        .block_on(
            EchoServer::new(GrpcEcho).serve(ServerBuilder::new(), &"127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
    let out = run(&bin, &[&server.local_addr().to_string()]);
    assert!(out.contains("all checks passed"), "{out}");
    rt.block_on(server.shutdown());
}

/// A gRPC server with C callbacks (`tests/c/grpc_server.c`), on one port
/// with Thrift: Weft Rust gRPC clients and a real grpcio client
/// (`tests/grpcio_client.py`, grpcio-tools messages) call it; a status from
/// the callback is the caller's grpc-status, garbage and a Thrift
/// exception as the answer are refused in C and INTERNAL for the caller,
/// late answers come from other threads, unknown methods and services are
/// UNIMPLEMENTED, an oversize request RESOURCE_EXHAUSTED.
#[test]
fn a_c_grpc_server_answers_weft_rust_and_grpcio_clients() {
    if skip() {
        return;
    }
    use weft_interop::grpc::{EchoClient, EchoReply, EchoRequest};
    use weft_protobuf::{GrpcClient, MethodDesc, MethodKind};
    let bin = compile("grpc_server");
    let server = CServer::start(&bin);
    let rt = runtime();
    let addr = server.addr.clone();
    let req = |message: &str| EchoRequest {
        message: message.to_owned().into(),
        ..Default::default()
    };
    let late = rt.block_on(async {
        let c = EchoClient::new(GrpcClient::new(addr.clone()));
        let mut call = timed(3000);
        call.metainfo.persistent.insert("tenant", "acme");
        let resp = c.unary(call, &req("hello from Rust")).await.unwrap();
        assert_eq!(resp.message.message, "hello from Rust");
        assert_eq!(
            resp.message.seen.get("persist:tenant").map(|v| &**v),
            Some("acme")
        );
        assert!(
            (1..=3000).contains(&resp.message.timeout_ms),
            "the C callback saw a deadline of {} ms",
            resp.message.timeout_ms
        );
        assert_eq!(
            resp.cx.metainfo.backward.get("echo-tenant").map(|v| &**v),
            Some("acme")
        );

        // The callback's error is the call's status.
        let gone = EchoRequest {
            code: Code::NotFound as i32,
            ..req("gone")
        };
        let e = c.unary(timed(3000), &gone).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::NotFound, "echo status: gone")
        );
        // Garbage and an exception as the answer: refused, INTERNAL here.
        for bad in ["garbage", "exception"] {
            let e = c.unary(timed(3000), &req(bad)).await.unwrap_err();
            assert_eq!(e.code(), Code::Internal, "{bad}: {e}");
            assert!(e.message().contains("garbage"), "{bad}: {e}");
        }
        // Answers from other threads, concurrently.
        let late = futures_join((0..20).map(|i| {
            let c = c.clone();
            async move {
                let r = EchoRequest {
                    sleep_ms: 50,
                    ..req(&format!("late{i}"))
                };
                c.unary(timed(3000), &r).await.map(|r| r.message.message)
            }
        }))
        .await;
        for (i, r) in late.into_iter().enumerate() {
            assert_eq!(r.unwrap(), format!("late{i}"));
        }
        // A method the callback does not serve: its UNIMPLEMENTED; another
        // service: Weft's, without reaching the callback.
        static NOPE: MethodDesc = MethodDesc {
            name: "Nope",
            path: "/weft.interop.echo.Echo/Nope",
            kind: MethodKind::Unary,
        };
        static OTHER: MethodDesc = MethodDesc {
            name: "Unary",
            path: "/other.Service/Unary",
            kind: MethodKind::Unary,
        };
        let g = GrpcClient::new(addr.clone());
        for (m, says) in [
            (&NOPE, "no method /weft.interop.echo.Echo/Nope here"),
            (&OTHER, "unknown service other.Service"),
        ] {
            let e = weft_protobuf::client::unary::<_, _, EchoReply>(&g, timed(3000), m, &req("?"))
                .await
                .unwrap_err();
            assert_eq!((e.code(), e.message()), (Code::Unimplemented, says));
        }
        // Over the 64 KiB limit the C server set: refused before the callback.
        let e = c
            .unary(timed(3000), &req(&"x".repeat(100 * 1024)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{e}");

        // Thrift on the same port reaches the same dispatcher.
        let thrift = weft_interop::EchoClient::new(
            &addr,
            Transport::TTHeader,
            Protocol::Binary,
            ConnectionMode::Multiplexed,
        );
        let e = thrift.add(cx(), 1, 2).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unimplemented, "only gRPC here")
        );
        20
    });

    // A real grpcio client, when Python is there.
    let grpcio = std::env::var_os("WEFT_FFI_SKIP_PY").is_none();
    if grpcio {
        let out = std::process::Command::new("python3")
            .arg(manifest().join("tests/grpcio_client.py"))
            .arg(addr.to_string())
            .output()
            .expect("running python3 (WEFT_FFI_SKIP_PY=1 skips the grpcio client)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("all checks passed"),
            "the grpcio client failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = server.stop();
    let (py_bad, py_late) = if grpcio { (1, 10) } else { (0, 0) };
    assert_eq!(counter(&out, "garbage_refused"), 1 + py_bad, "{out}");
    assert_eq!(counter(&out, "exception_refused"), 1 + py_bad, "{out}");
    assert_eq!(counter(&out, "late_answered"), late + py_late, "{out}");
    assert_eq!(counter(&out, "thrift_calls"), 1, "{out}");
    assert_eq!(counter(&out, "other_service_dispatched"), 0, "{out}");
    assert_eq!(counter(&out, "failures"), 0, "{out}");
}

/// Join futures concurrently on the current task (no extra dependency).
async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The cost of crossing the boundary: sequential blocking calls to the
/// same in-process Weft echo server from a native Weft Rust client, through
/// the shim's `weft_client_call` from Rust, and from a C program; and a
/// trivial shim call from C. Long and timing-sensitive, so behind
/// `WEFT_FFI_BENCH=1`; run it in release:
/// `WEFT_FFI_BENCH=1 cargo test --release -p weft-ffi --test c_programs boundary_cost -- --nocapture`
#[test]
fn boundary_cost() {
    if skip() || std::env::var_os("WEFT_FFI_BENCH").is_none() {
        return;
    }
    const CALLS: u32 = 20_000;
    let rt = runtime();
    let server = rt.block_on(echo_server("127.0.0.1:0"));
    let addr = server.local_addr().clone();

    // Native: the typed client behind the same ClientStack the shim builds
    // (retries, breakers, P2C, a total timeout), on a runtime of its own
    // with as many workers as the shim's, blocking on a plain thread as C
    // does. Rounds alternate with the shim's; each side's best round counts.
    let native_rt = runtime();
    let native_client = {
        use weft_middleware::{ClientStack, PerMethod};
        let _enter = native_rt.enter();
        let discover = weft_core::StaticDiscover::from_addresses([addr.clone()]);
        let a = addr.clone();
        ClientStack::new()
            .total_timeout(PerMethod::new(Some(Duration::from_secs(30))))
            .build(&discover, "", move |_: &weft_core::Instance| {
                EchoClient::new(
                    &a,
                    Transport::TTHeader,
                    Protocol::Binary,
                    ConnectionMode::Multiplexed,
                )
                .inner
            })
            .unwrap()
    };
    let native_round = || {
        use tower::ServiceExt;
        let t0 = Instant::now();
        for _ in 0..CALLS {
            let req = weft_core::Request::new(
                Context::new("", "add"),
                weft_interop::EchoRequest::Add(weft_interop::EchoAddArgsSend { a: 20, b: 22 }),
            );
            native_rt
                .block_on(native_client.clone().oneshot(req))
                .unwrap();
        }
        t0.elapsed().as_secs_f64() / f64::from(CALLS) * 1e6
    };

    // The shim's C functions, called from Rust.
    let shim = {
        use std::ptr::null_mut;
        use weft::{client::*, error::WEFT_OK, runtime::*};
        let (mut wrt, mut opts, mut client) = (null_mut(), null_mut(), null_mut());
        assert_eq!(weft_runtime_new(2, &mut wrt, null_mut()), WEFT_OK);
        assert_eq!(weft_client_options_new(&mut opts, null_mut()), WEFT_OK);
        let a = std::ffi::CString::new(addr.to_string()).unwrap();
        assert_eq!(
            weft_client_options_add_address(opts, a.as_ptr(), null_mut()),
            WEFT_OK
        );
        assert_eq!(weft_client_new(wrt, opts, &mut client, null_mut()), WEFT_OK);
        // add(1: i64 20, 2: i64 22), binary.
        let mut args = vec![10, 0, 1];
        args.extend_from_slice(&20i64.to_be_bytes());
        args.extend_from_slice(&[10, 0, 2]);
        args.extend_from_slice(&22i64.to_be_bytes());
        args.push(0);
        let (mut best_shim, mut best_native) = (f64::MAX, f64::MAX);
        for _ in 0..4 {
            best_native = best_native.min(native_round());
            let t0 = Instant::now();
            for _ in 0..CALLS {
                let mut reply = weft_reply {
                    result: weft::weft_bytes {
                        data: std::ptr::null(),
                        len: 0,
                        owner: null_mut(),
                    },
                    exception_id: 0,
                    exception: std::ptr::null(),
                    exception_len: 0,
                };
                let rc = weft_client_call(
                    client,
                    c"add".as_ptr(),
                    args.as_ptr(),
                    args.len(),
                    null_mut(),
                    &mut reply,
                    null_mut(),
                );
                assert_eq!(rc, WEFT_OK);
                weft_reply_free(&mut reply);
            }
            best_shim = best_shim.min(t0.elapsed().as_secs_f64() / f64::from(CALLS) * 1e6);
        }
        weft_client_free(client);
        weft_client_options_free(opts);
        weft_runtime_free(wrt);
        (best_shim, best_native)
    };
    let (shim, native) = shim;

    let bench = compile_with(&manifest().join("tests/c/bench.c"), false);
    let out = Command::new(&bench)
        .env_remove("LD_LIBRARY_PATH")
        .args([&addr.to_string(), &CALLS.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let c = String::from_utf8_lossy(&out.stdout);
    println!(
        "boundary_cost: {CALLS} sequential add() calls over loopback TTHeader/binary, \
         best of 4 rounds\n  \
         native Weft Rust client (same ClientStack): {native:.2} us/call\n  \
         shim from Rust (weft_client_call): {shim:.2} us/call ({:+.2} us)\n  \
         C program: {}",
        shim - native,
        c.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    rt.block_on(server.shutdown());
}
