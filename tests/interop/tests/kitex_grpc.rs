//! Kitex's gRPC (nphttp2, protobuf, Kitex v0.16.3 with code from its own
//! `kitex -type protobuf`) against Weft's gRPC, both ways, for the Echo
//! service of `idl/echo.proto`: unary calls with metadata, Kitex metainfo,
//! the caller's name and response headers and trailers; deadlines; status
//! codes; server, client and bidirectional streams; a stream ending in a
//! status. Run by `scripts/interop.sh`, which records each cell.
//!
//! The Kitex peer (`go/cmd/kitex-grpc-peer`) and [`weft_interop::grpc::GrpcEcho`]
//! answer alike, so the Kitex client's cases check the Weft server, and the
//! Weft client's cases below check the Kitex server.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use support::{cell, peer, run_client, start_server, Cell};
use weft::{
    core::{Address, Code, Context, ServerBuilder, ServerHandle, Status},
    protobuf::{GrpcClient, Metadata, ResponseMetadata},
};
use weft_interop::grpc::{EchoClient, EchoReply, EchoRequest, EchoServer, GrpcEcho};

const PEER: &str = "Kitex (nphttp2)";
const TRANSPORT: &str = "gRPC, HTTP/2";
const PROTOCOL: &str = "protobuf";
/// The name the Weft client calls as; Kitex learns it from
/// `source-service` metadata.
const WEFT_CALLER: &str = "weft-grpc-client";

async fn weft_server() -> (ServerHandle, String) {
    let server = EchoServer::new(GrpcEcho)
        .serve(
            ServerBuilder::new().drain_timeout(Duration::from_secs(2)),
            &"127.0.0.1:0".parse().unwrap(),
        )
        .await
        .expect("the Weft gRPC server starts");
    let addr = server.local_addr().to_string();
    (server, addr)
}

// ===== Kitex client → Weft server =====

async fn kitex_client(case: &'static str) {
    let c = Cell {
        peer: PEER,
        direction: "Kitex client → Weft server",
        transport: TRANSPORT,
        protocol: PROTOCOL,
        check: case,
    };
    cell(c, async {
        let (_server, addr) = weft_server().await;
        run_client(
            &peer("kitex-grpc-peer"),
            &["client", "-addr", &addr, "-case", case, "-server", "weft"],
        )
        .await
    })
    .await;
}

// ===== Weft client → Kitex server =====

fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_string().into(),
        ..Default::default()
    }
}

fn cx(timeout: Duration) -> Context {
    let mut cx = Context::default();
    cx.caller = WEFT_CALLER.into();
    cx.set_timeout(timeout);
    cx
}

fn expect(fails: &mut Vec<String>, what: &str, got: impl AsRef<str>, want: &str) {
    if got.as_ref() != want {
        fails.push(format!("{what}: got {:?}, want {want:?}", got.as_ref()));
    }
}

fn seen<'a>(r: &'a EchoReply, key: &str) -> &'a str {
    r.seen.get(key).map_or("", |v| v.as_str())
}

/// A response header or trailer, read as the UTF-8 the peer sent.
fn header(md: Option<&ResponseMetadata>, trailer: bool, name: &str) -> String {
    let Some(md) = md else { return String::new() };
    let map = if trailer { &md.trailers } else { &md.headers };
    map.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

async fn case_unary(client: &EchoClient) -> Vec<String> {
    let mut fails = Vec::new();
    let mut cx = cx(Duration::from_secs(20));
    let mut md = http::HeaderMap::new();
    md.insert("x-plain", http::HeaderValue::from_static("from-weft"));
    cx.extensions.insert(Metadata(md));
    cx.metainfo.persistent.insert("tenant", "blue");
    cx.metainfo.transient.insert("hop", "one");
    let resp = match client.unary(cx, &req("héllo, kitex")).await {
        Ok(r) => r,
        Err(e) => return vec![format!("unary: {e}")],
    };
    let r = &resp.message;
    expect(&mut fails, "message", &r.message, "héllo, kitex");
    expect(&mut fails, "md:x-plain", seen(r, "md:x-plain"), "from-weft");
    // Kitex reads rpc-persist-tenant / rpc-transit-hop in CGI form.
    expect(
        &mut fails,
        "persist:TENANT",
        seen(r, "persist:TENANT"),
        "blue",
    );
    expect(&mut fails, "transient:HOP", seen(r, "transient:HOP"), "one");
    expect(&mut fails, "caller", seen(r, "caller"), WEFT_CALLER);
    if !fails.is_empty() {
        let mut all: Vec<_> = r.seen.iter().map(|(k, v)| format!("{k}={v}")).collect();
        all.sort();
        fails.push(format!("(the Kitex server saw: {})", all.join(" ")));
    }
    let rmd = resp.cx.extensions.get::<ResponseMetadata>();
    expect(
        &mut fails,
        "response header x-echo-header",
        header(rmd, false, "x-echo-header"),
        "héllo, kitex",
    );
    expect(
        &mut fails,
        "response trailer x-echo-trailer",
        header(rmd, true, "x-echo-trailer"),
        "done",
    );
    if r.timeout_ms <= 0 || r.timeout_ms > 20_000 {
        fails.push(format!(
            "the Kitex server saw a deadline of {} ms, want 0 < d <= 20000",
            r.timeout_ms
        ));
    }
    fails
}

async fn case_deadline(client: &EchoClient) -> Vec<String> {
    let mut fails = Vec::new();
    let start = Instant::now();
    let slow = EchoRequest {
        sleep_ms: 5_000,
        ..req("slow")
    };
    match client.unary(cx(Duration::from_millis(300)), &slow).await {
        Ok(_) => fails.push("a 5 s call under a 300 ms deadline succeeded".into()),
        Err(e) if e.code() != Code::DeadlineExceeded => {
            fails.push(format!("deadline: {e}, want DEADLINE_EXCEEDED"))
        }
        Err(_) => {}
    }
    let took = start.elapsed();
    if took > Duration::from_secs(3) {
        fails.push(format!("the deadline failed only after {took:?}"));
    }
    // A 2 s deadline arrives as grpc-timeout: 0 < d <= 2000 ms.
    match client
        .unary(cx(Duration::from_secs(2)), &req("quick"))
        .await
    {
        Ok(r) if r.message.timeout_ms <= 0 || r.message.timeout_ms > 2_000 => fails.push(format!(
            "the Kitex server saw {} ms, want 0 < d <= 2000",
            r.message.timeout_ms
        )),
        Ok(_) => {}
        Err(e) => fails.push(format!("deadline: the follow-up call: {e}")),
    }
    fails
}

/// What Kitex v0.16.3's gRPC server appends to the message of a status its
/// handler returns (on the wire: grpcio reads it too).
const BIZ_SUFFIX: &str = " [biz error]";

fn check_status(
    fails: &mut Vec<String>,
    what: &str,
    got: Result<(), Status>,
    code: Code,
    msg: &str,
) {
    match got {
        Ok(()) => fails.push(format!("{what}: no error, want {code:?}")),
        Err(s) if s.code() == code && s.message() == format!("{msg}{BIZ_SUFFIX}") => {}
        Err(s) => fails.push(format!(
            "{what}: {:?} {:?}, want {code:?} {:?}",
            s.code(),
            s.message(),
            format!("{msg}{BIZ_SUFFIX}")
        )),
    }
}

async fn case_status(client: &EchoClient) -> Vec<String> {
    let mut fails = Vec::new();
    for (code, message) in [
        (Code::PermissionDenied, "nope"),
        (Code::NotFound, "ünïcode % msg"),
    ] {
        let r = EchoRequest {
            code: code as i32,
            ..req(message)
        };
        let got = client
            .unary(cx(Duration::from_secs(10)), &r)
            .await
            .map(|_| ());
        check_status(
            &mut fails,
            &format!("unary {code:?}"),
            got,
            code,
            &format!("echo status: {message}"),
        );
    }
    fails
}

async fn case_server_stream(client: &EchoClient) -> Vec<String> {
    let r = EchoRequest {
        count: 5,
        ..req("s")
    };
    let mut stream = match client.server_stream(cx(Duration::from_secs(10)), &r).await {
        Ok(s) => s.message,
        Err(e) => return vec![format!("server stream: {e}")],
    };
    let mut got = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => got.push(format!("{}/{}", m.message, m.index)),
            Ok(None) => break,
            Err(e) => return vec![format!("server stream recv: {e}")],
        }
    }
    let mut fails = Vec::new();
    expect(
        &mut fails,
        "server stream",
        got.join(" "),
        "s#0/0 s#1/1 s#2/2 s#3/3 s#4/4",
    );
    fails
}

async fn case_client_stream(client: &EchoClient) -> Vec<String> {
    let reqs = futures::stream::iter(["a", "b", "c", "d"].map(req));
    match client
        .client_stream(cx(Duration::from_secs(10)), reqs)
        .await
    {
        Ok(r) => {
            let mut fails = Vec::new();
            expect(
                &mut fails,
                "client stream",
                format!("{}/{}", r.message.message, r.message.index),
                "a,b,c,d/4",
            );
            fails
        }
        Err(e) => vec![format!("client stream: {e}")],
    }
}

async fn case_bidi(client: &EchoClient) -> Vec<String> {
    // Ping-pong: each reply read before the next send, so the server
    // answers as messages come, not at the end.
    let (tx, rx) = futures::channel::mpsc::unbounded::<EchoRequest>();
    let mut replies = match client.bidi(cx(Duration::from_secs(10)), rx).await {
        Ok(s) => s.message,
        Err(e) => return vec![format!("bidi: {e}")],
    };
    let mut fails = Vec::new();
    for (i, m) in ["one", "two", "three"].into_iter().enumerate() {
        if tx.unbounded_send(req(m)).is_err() {
            return vec![format!("bidi send {m}: the call ended")];
        }
        match tokio::time::timeout(Duration::from_secs(5), replies.next()).await {
            Ok(Some(Ok(r))) => expect(
                &mut fails,
                "bidi reply",
                format!("{}/{}", r.message, r.index),
                &format!("{m}/{i}"),
            ),
            Ok(Some(Err(e))) => return vec![format!("bidi recv: {e}")],
            Ok(None) => return vec![format!("bidi: the stream ended before {m}'s reply")],
            Err(_) => return vec![format!("bidi: no reply to {m} within 5 s")],
        }
    }
    drop(tx);
    match tokio::time::timeout(Duration::from_secs(5), replies.next()).await {
        Ok(None) => {}
        Ok(Some(r)) => fails.push(format!("bidi end: {r:?}, want the end")),
        Err(_) => fails.push("bidi: no end within 5 s of closing".into()),
    }
    fails
}

async fn case_stream_status(client: &EchoClient) -> Vec<String> {
    // Two replies, then the status in the trailers.
    let r = EchoRequest {
        count: 2,
        code: Code::ResourceExhausted as i32,
        ..req("e")
    };
    let mut stream = match client.server_stream(cx(Duration::from_secs(10)), &r).await {
        Ok(s) => s.message,
        Err(e) => return vec![format!("stream status: {e}")],
    };
    let mut fails = Vec::new();
    let mut n = 0;
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    check_status(
        &mut fails,
        "server stream RESOURCE_EXHAUSTED",
        end,
        Code::ResourceExhausted,
        "echo status: e",
    );
    if n != 2 {
        fails.push(format!(
            "stream status: {n} replies before the status, want 2"
        ));
    }
    fails
}

async fn weft_client(case: &'static str) {
    let c = Cell {
        peer: PEER,
        direction: "Weft client → Kitex server",
        transport: TRANSPORT,
        protocol: PROTOCOL,
        check: case,
    };
    cell(c, async {
        let server = match start_server(&peer("kitex-grpc-peer"), &["server"]).await {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let addr: Address = server.addr.parse().unwrap();
        let client = EchoClient::new(GrpcClient::new(addr));
        match case {
            "unary" => case_unary(&client).await,
            "deadline" => case_deadline(&client).await,
            "status" => case_status(&client).await,
            "server-stream" => case_server_stream(&client).await,
            "client-stream" => case_client_stream(&client).await,
            "bidi" => case_bidi(&client).await,
            "stream-status" => case_stream_status(&client).await,
            other => panic!("no case {other}"),
        }
    })
    .await;
}

macro_rules! cases {
    ($($case:ident => $name:literal),* $(,)?) => {
        mod kitex_client_weft_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::kitex_client($name).await
                }
            )*
        }
        mod weft_client_kitex_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::weft_client($name).await
                }
            )*
        }
    };
}

cases!(
    unary => "unary",
    deadline => "deadline",
    status => "status",
    server_stream => "server-stream",
    client_stream => "client-stream",
    bidi => "bidi",
    stream_status => "stream-status",
);
