//! Interoperability with Apache Thrift itself: the Python library and the
//! code its compiler (`thrift --gen py`) generates from `idl/echo.thrift`.
//! A Python client calls a Weft server, and a Weft client calls a Python
//! server, for binary and compact × framed and buffered; every value that
//! comes back is checked exactly. The README's test command installs
//! `thrift-compiler` and `pip install thrift`.

use std::{path::PathBuf, process::Stdio, sync::OnceLock, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};
use weft::core::{Address, Code, ConnectionMode, Context, ServerBuilder};
use weft::thrift::{Protocol, Transport};
use weft_interop::{assert_payload_eq, sample_payload, serve, EchoClient, EchoHandler, Payload};

const COMBOS: [(&str, Protocol, &str, Transport); 4] = [
    ("binary", Protocol::Binary, "framed", Transport::Framed),
    ("binary", Protocol::Binary, "buffered", Transport::Buffered),
    ("compact", Protocol::Compact, "framed", Transport::Framed),
    (
        "compact",
        Protocol::Compact,
        "buffered",
        Transport::Buffered,
    ),
];

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
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gen-py-echo");
        std::fs::create_dir_all(&out).unwrap();
        let status = std::process::Command::new("thrift")
            .arg("--gen")
            .arg("py")
            .arg("-out")
            .arg(&out)
            .arg(manifest_dir().join("idl/echo.thrift"))
            .status()
            .expect("the Apache Thrift compiler `thrift` must be installed (see README)");
        assert!(status.success(), "thrift --gen py failed");
        out
    })
}

fn py_command(script: &str, port: u16, protocol: &str, transport: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(manifest_dir().join("py").join(script))
        .arg(format!("--port={port}"))
        .arg(format!("--protocol={protocol}"))
        .arg(format!("--transport={transport}"))
        .env("WEFT_GEN_PY", gen_py())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn port_of(addr: &Address) -> u16 {
    match addr {
        Address::Tcp(a) => a.port(),
        Address::Unix(_) | Address::Host(..) => unreachable!("tcp only"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_weft_server() {
    let handler = EchoHandler::default();
    let server = serve("127.0.0.1:0", ServerBuilder::new(), handler.clone())
        .await
        .unwrap();
    let port = port_of(server.local_addr());
    for (proto_name, _, transport_name, _) in COMBOS {
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            py_command("client.py", port, proto_name, transport_name).output(),
        )
        .await
        .expect("python client timed out")
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{proto_name}/{transport_name}: python client failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("all checks passed"), "{stdout}");
    }
    // The same battery through TMultiplexedProtocol: "Echo:add" and so on.
    let out = py_command("client.py", port, "binary", "framed")
        .arg("--service=Echo")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "multiplexed python client failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each of the five runs sent one one-way `notify`: exactly five
    // arrived (waited for, bounded: a one-way call has no answer to wait on).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handler.notes.lock().await.len() < COMBOS.len() + 1
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let notes = handler.notes.lock().await.clone();
    assert_eq!(notes, vec!["from python"; COMBOS.len() + 1]);
    server.shutdown().await;
}

/// A Python server on a free port, and the lines it prints after
/// `serving` (its handler prints `notified TEXT` per one-way call).
async fn start_python_server(
    protocol: &str,
    transport: &str,
) -> (
    tokio::process::Child,
    Address,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    // Ask the kernel for a free port, then hand it to Python.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = py_command("server.py", port, protocol, transport)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("python server did not start");
    assert_eq!(first.unwrap().as_deref(), Some("serving"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.send(l);
        }
    });
    let addr: Address = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (child, addr, rx);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("python server never accepted a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_client_calls_python_server() {
    for (proto_name, protocol, transport_name, transport) in COMBOS {
        let what = format!("{proto_name}/{transport_name}");
        let (mut child, addr, mut printed) = start_python_server(proto_name, transport_name).await;
        let client = EchoClient::new(&addr, transport, protocol, ConnectionMode::Pooled);
        let cx = Context::default;

        let p = sample_payload(1 << 20);
        assert_payload_eq(&client.echo(cx(), p.clone()).await.expect(&what), &p, &what);
        let small = Payload {
            text: Some("".into()),
            blob: Some(Default::default()),
            ..Default::default()
        };
        assert_payload_eq(
            &client.echo(cx(), small.clone()).await.unwrap(),
            &small,
            &what,
        );
        assert_eq!(client.add(cx(), 1 << 40, -5).await.unwrap(), (1 << 40) - 5);
        let e = client.fail(cx(), 7, "boom").await.unwrap().unwrap_err();
        assert_eq!(
            (e.code, e.message.as_deref()),
            (Some(7), Some("boom")),
            "{what}"
        );
        let s = client.fail(cx(), -1, "undeclared").await.unwrap_err();
        assert_eq!(s.code(), Code::Internal, "{what}: {s:?}");
        client.ping(cx()).await.unwrap();
        client.notify(cx(), "from weft").await.unwrap();
        assert_eq!(client.slow(cx(), small.clone(), 5).await.unwrap(), small);
        // Pooled connections were reused: the calls above still line up.
        assert_eq!(client.add(cx(), 2, 3).await.unwrap(), 5, "{what}");
        // The one-way call reached Python's handler, once.
        let notified = tokio::time::timeout(Duration::from_secs(10), printed.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: Python's handler never saw the one-way call"));
        assert_eq!(notified.as_deref(), Some("notified from weft"), "{what}");
        child.kill().await.unwrap();
        let _ = child.wait().await;
        while let Ok(l) = printed.try_recv() {
            assert!(
                !l.starts_with("notified"),
                "{what}: a second one-way call: {l}"
            );
        }
    }
}
