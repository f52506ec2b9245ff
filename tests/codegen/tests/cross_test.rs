//! The Apache Thrift cross test, both ways: Apache's Python `ThriftTest`
//! client (code from `thrift --gen py`) against the Weft cross-test server,
//! and the Weft cross-test client against Apache's Python server, for
//! binary, compact and THeader × buffered and framed (THeader over framed
//! is a THeader frame inside a frame, as Apache sends it), and `SecondService`
//! through `TMultiplexedProtocol`; Apache's one-connection `TSimpleServer`
//! for every protocol (both services over one connection); plus a Unix
//! socket each way.
//!
//! Needs `thrift` (the Apache compiler) and the `thrift` Python package;
//! `scripts/test.sh` installs both.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const PROTOCOLS: &[&str] = &["binary", "compact", "header", "multi", "multic", "multih"];
const TRANSPORTS: &[&str] = &["buffered", "framed"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("WEFT_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Generate the Python code once per test binary, with Apache's compiler.
fn gen_py() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gen-py-thrift-test");
        std::fs::create_dir_all(&out).unwrap();
        let output = std::process::Command::new("thrift")
            .args(["--gen", "py", "-out"])
            .arg(&out)
            .arg(manifest_dir().join("../../../shared/idl/thrift/ThriftTest.thrift"))
            .output()
            .expect("the Apache Thrift compiler `thrift` must be installed (see README)");
        assert!(
            output.status.success(),
            "thrift --gen py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        out
    })
}

fn py(script: &str, flags: &[String]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(manifest_dir().join("py").join(script))
        .args(flags)
        .env("WEFT_GEN_PY", gen_py())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn flags(protocol: &str, transport: &str, endpoint: &str) -> Vec<String> {
    vec![
        format!("--protocol={protocol}"),
        format!("--transport={transport}"),
        endpoint.to_string(),
    ]
}

/// Wait (bounded) for `child` to print a line starting with `prefix`;
/// returns the rest of it. Later output is drained in the background.
async fn wait_for_line(child: &mut Child, prefix: &str) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(rest) = l.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
        panic!("the process ended without printing {prefix:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {prefix:?} line within 30 s"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line
}

/// Run `cmd` to completion (bounded) and insist it succeeds.
async fn run_ok(mut cmd: Command, what: &str) {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 60 s"))
        .unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn start_weft_server(endpoint: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cross_test_server"))
        .arg(endpoint)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = wait_for_line(&mut child, "listening on").await;
    (child, addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll (bounded) until something accepts connections at `endpoint`.
async fn wait_accepting(port: Option<u16>, socket: Option<&Path>) {
    for _ in 0..400 {
        let up = match (port, socket) {
            (Some(p), _) => tokio::net::TcpStream::connect(("127.0.0.1", p))
                .await
                .is_ok(),
            (None, Some(s)) => tokio::net::UnixStream::connect(s).await.is_ok(),
            _ => unreachable!(),
        };
        if up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the Python server never accepted a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_against_weft_server() {
    let (_server, addr) = start_weft_server("--port=0").await;
    let port = addr.rsplit(':').next().unwrap().to_string();
    for protocol in PROTOCOLS {
        for transport in TRANSPORTS {
            let what = format!("Python client, Weft server, {protocol}/{transport}");
            run_ok(
                py(
                    "test_client.py",
                    &flags(protocol, transport, &format!("--port={port}")),
                ),
                &what,
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_against_python_server() {
    for protocol in PROTOCOLS {
        for transport in TRANSPORTS {
            let what = format!("Weft client, Python server, {protocol}/{transport}");
            let port = free_port();
            let endpoint = format!("--port={port}");
            let mut server = py("test_server.py", &flags(protocol, transport, &endpoint))
                .spawn()
                .unwrap();
            wait_for_line(&mut server, "serving").await;
            wait_accepting(Some(port), None).await;
            let mut client = Command::new(env!("CARGO_BIN_EXE_cross_test_client"));
            client.args(flags(protocol, transport, &endpoint));
            run_ok(client, &what).await;
        }
    }
}

/// Apache's single-threaded `TSimpleServer`, which Apache's own cross test
/// runs: it serves one connection until it closes, so a client must make
/// every call on one connection — with a multiplexed protocol, the calls
/// of `ThriftTest` and of `SecondService` too (a second connection would
/// wait until the client's 10 s timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_against_python_simple_server() {
    for protocol in PROTOCOLS {
        for transport in TRANSPORTS {
            let what = format!("Weft client, Python TSimpleServer, {protocol}/{transport}");
            let port = free_port();
            let endpoint = format!("--port={port}");
            let mut flags = flags(protocol, transport, &endpoint);
            flags.push("--server-type=simple".into());
            let mut server = py("test_server.py", &flags).spawn().unwrap();
            wait_for_line(&mut server, "serving").await;
            // The probe's connection is served and closed before the client's.
            wait_accepting(Some(port), None).await;
            let mut client = Command::new(env!("CARGO_BIN_EXE_cross_test_client"));
            client.args(self::flags(protocol, transport, &endpoint));
            run_ok(client, &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ways_over_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let weft_sock = dir.path().join("weft.sock");
    let endpoint = format!("--domain-socket={}", weft_sock.display());
    let (_server, _) = start_weft_server(&endpoint).await;
    run_ok(
        py("test_client.py", &flags("compact", "framed", &endpoint)),
        "Python client, Weft server, Unix socket",
    )
    .await;

    let py_sock = dir.path().join("py.sock");
    let endpoint = format!("--domain-socket={}", py_sock.display());
    let mut server = py("test_server.py", &flags("binary", "buffered", &endpoint))
        .spawn()
        .unwrap();
    wait_for_line(&mut server, "serving").await;
    wait_accepting(None, Some(&py_sock)).await;
    let mut client = Command::new(env!("CARGO_BIN_EXE_cross_test_client"));
    client.args(flags("binary", "buffered", &endpoint));
    run_ok(client, "Weft client, Python server, Unix socket").await;
}

/// Weft's default transport, TTHeader, against a plain framed Apache
/// server, which hangs up on the frame it cannot read: the error names the
/// server and says what it probably speaks, in both connection modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttheader_client_of_a_framed_apache_server_is_told_why_it_hung_up() {
    use weft::{
        core::{Address, ClientBuilder, ConnectionMode},
        thrift::{Protocol, Transport},
    };
    use weft_codegen_tests::thrift_test::thrifttest::ThriftTestClient;

    let port = free_port();
    let endpoint = format!("--port={port}");
    let mut server = py("test_server.py", &flags("binary", "framed", &endpoint))
        .spawn()
        .unwrap();
    wait_for_line(&mut server, "serving").await;
    wait_accepting(Some(port), None).await;
    let addr: Address = format!("127.0.0.1:{port}").parse().unwrap();
    for mode in [ConnectionMode::Multiplexed, ConnectionMode::Pooled] {
        let builder = ClientBuilder::new(addr.clone())
            .mode(mode)
            .timeout(Duration::from_secs(10));
        let client = ThriftTestClient::new(builder, Transport::TTHeader, Protocol::Binary);
        let e = client.test_void().await.unwrap_err();
        let m = e.to_string();
        assert!(m.contains(&addr.to_string()), "{mode:?}: {m}");
        assert!(m.contains("before answering anything"), "{mode:?}: {m}");
        assert!(m.contains("Transport::Framed"), "{mode:?}: {m}");
    }
}
