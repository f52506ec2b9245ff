//! Interop with Kitex (CloudWeGo's Go framework, v0.16.3, code from Kitex's
//! own generator) over TTHeader, both ways, on real loopback sockets:
//!
//! - a Kitex client calls a Weft server, with Kitex's long-connection pool
//!   (TTHeader around a framed message) and with its multiplexed client, and
//! - a Weft client calls a Kitex server, pooled against Kitex's default
//!   server and multiplexed against its multiplexed server,
//!
//! each running every `ThriftTest` method, 64 concurrent calls, metainfo
//! (persistent and transient forward, backward on the way back), deadlines
//! (the RPC timeout in the TTHeader, and a call that outlives it), caller and
//! callee names, and Kitex's business status error mapped to and from
//! [`BizStatus`]. The Go program lives in `tests/interop/go`;
//! `scripts/interop.sh` builds it.
//!
//! Both servers answer `testString` arguments `meta` (a JSON report of what
//! the call carried, and a backward value), `biz:CODE` and `bizplain:CODE`
//! (a business status error with and without extra) and `sleep:MS`.

mod support;

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use futures::future::join_all;
use support::{cell, peer, run_client, start_server, Cell, EmptyIsAbsent};
use weft::{
    core::{
        faststr::FastStr, tower::Service, Address, ClientBuilder, Code, ConnectionMode, Context,
        Request, Response, ServerBuilder, ServerHandle, Status,
    },
    thrift::{BizStatus, Protocol, ThriftServerCodec, Transport},
};
use weft_codegen_tests::{
    cross::{self, ThriftTestHandler},
    thrift_test::thrifttest::{
        SecondServiceClient, ThriftTestClient, ThriftTestRequest, ThriftTestResponse,
        ThriftTestServer, ThriftTestTestStringArgsSend, ThriftTestTestStringResultSend,
    },
};

const PEER: &str = "Kitex v0.16.3";
/// The caller name of the Weft client (the Kitex client's is checked on the
/// Go side, in `cmd/kitex-peer`).
const WEFT_CLIENT: &str = "weft-interop-client";

/// What a `meta` call saw; both servers answer in this shape.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Report {
    caller: String,
    service: String,
    method: String,
    persistent: BTreeMap<String, String>,
    transient: BTreeMap<String, String>,
    /// The RPC timeout the call stated, in milliseconds (0: none).
    timeout_ms: i64,
}

// ===== Weft server =====

/// `ThriftTest` as Apache's cross-test servers answer it, plus the special
/// `testString` arguments above.
#[derive(Clone)]
struct KitexAware(ThriftTestServer<ThriftTestHandler>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<ThriftTestRequest>> for KitexAware {
    type Response = Response<ThriftTestResponse>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ThriftTestRequest>) -> Self::Future {
        let special = match &req.message {
            ThriftTestRequest::TestString(a) => Some(a.thing.clone()),
            _ => None,
        };
        match special {
            Some(thing) if is_special(&thing) => Box::pin(special_call(req.cx, thing)),
            _ => self.0.call(req),
        }
    }
}

fn is_special(s: &str) -> bool {
    s == "meta" || s.starts_with("biz:") || s.starts_with("bizplain:") || s.starts_with("sleep:")
}

async fn special_call(
    mut cx: Context,
    thing: FastStr,
) -> Result<Response<ThriftTestResponse>, Status> {
    let answer = |cx, s: String| {
        Ok(Response::new(
            cx,
            ThriftTestResponse::TestString(ThriftTestTestStringResultSend::Ok(s.into())),
        ))
    };
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|e| Status::invalid_argument(format!("{s}: {e}")))
    };
    if thing == "meta" {
        let kv = |l: &weft::core::KvList| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let report = Report {
            caller: cx.caller.to_string(),
            service: cx.service.to_string(),
            method: cx.method.to_string(),
            persistent: kv(&cx.metainfo.persistent),
            transient: kv(&cx.metainfo.upstream),
            timeout_ms: cx.remaining().map_or(0, |d| d.as_millis() as i64),
        };
        let back = format!("back-{}", cx.caller);
        cx.metainfo.backward.insert("from-weft", back);
        return answer(cx, serde_json::to_string(&report).unwrap());
    }
    if let Some(code) = thing.strip_prefix("biz:") {
        return Err(BizStatus::new(number(code)? as i32, "biz from weft")
            .with_extra("k", "v")
            .with_extra("quote", "a\"b")
            .into());
    }
    if let Some(code) = thing.strip_prefix("bizplain:") {
        return Err(BizStatus::new(number(code)? as i32, "plain biz from weft").into());
    }
    let ms = number(thing.strip_prefix("sleep:").unwrap())?;
    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    answer(cx, thing.to_string())
}

async fn weft_server() -> (ServerHandle, String) {
    let builder = ServerBuilder::new().drain_timeout(Duration::from_secs(2));
    let limits = builder.limits_ref().clone();
    let server = builder
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || ThriftServerCodec::<ThriftTestRequest, ThriftTestResponse>::new(&limits),
            KitexAware(ThriftTestServer::new(ThriftTestHandler)),
        )
        .await
        .expect("the Weft server starts");
    let addr = server.local_addr().to_string();
    (server, addr)
}

// ===== Kitex client → Weft server =====

async fn kitex_client(mode: &'static str, case: &'static str) {
    let c = Cell {
        peer: PEER,
        direction: "Kitex client → Weft server",
        transport: if mode == "pool" {
            "TTHeader framed, Kitex pool"
        } else {
            "TTHeader, Kitex mux"
        },
        protocol: "binary",
        check: case,
    };
    cell(c, async {
        let (_server, addr) = weft_server().await;
        run_client(
            &peer("kitex-peer"),
            &["client", "-addr", &addr, "-mode", mode, "-case", case],
        )
        .await
    })
    .await;
}

// ===== Weft client → Kitex server =====

fn weft_client(addr: &str, mode: ConnectionMode) -> ThriftTestClient {
    let addr: Address = addr.parse().unwrap();
    ThriftTestClient::new(
        ClientBuilder::new(addr)
            .mode(mode)
            .timeout(Duration::from_secs(10)),
        Transport::TTHeader,
        Protocol::Binary,
    )
}

fn cx() -> Context {
    let mut cx = Context::new("ThriftTest", "");
    cx.caller = WEFT_CLIENT.into();
    cx
}

fn test_string(thing: &str) -> ThriftTestRequest {
    ThriftTestRequest::TestString(ThriftTestTestStringArgsSend {
        thing: FastStr::new(thing),
    })
}

/// Call `meta`; the report and the response context (backward metainfo).
async fn meta(client: &ThriftTestClient, cx: Context) -> Result<(Report, Context), String> {
    let resp = client
        .call(cx, test_string("meta"))
        .await
        .map_err(|e| format!("testString(meta): {e}"))?;
    match resp.message {
        ThriftTestResponse::TestString(ThriftTestTestStringResultSend::Ok(s)) => {
            let r = serde_json::from_str(&s).map_err(|e| format!("testString(meta): {e}: {s}"))?;
            Ok((r, resp.cx))
        }
        other => Err(format!("testString(meta): got {other:?}")),
    }
}

async fn case_battery(client: &ThriftTestClient) -> Vec<String> {
    let client = ThriftTestClient::from_service(EmptyIsAbsent(client.inner().clone()));
    cross::battery(&client, None::<&SecondServiceClient>).await
}

async fn case_concurrent(client: &ThriftTestClient) -> Vec<String> {
    let calls = (0..64).map(|i| async move {
        let want = format!("call-{i}-{}", "y".repeat(i * 97));
        match client
            .with_context(&cx())
            .test_string(want.clone().into())
            .await
            .map(|(v, _)| v)
        {
            Ok(got) if got == want => None,
            Ok(got) => Some(format!(
                "testString #{i}: got another call's answer ({} bytes)",
                got.len()
            )),
            Err(e) => Some(format!("testString #{i}: {e}")),
        }
    });
    join_all(calls).await.into_iter().flatten().collect()
}

async fn case_meta(client: &ThriftTestClient) -> Vec<String> {
    let mut c = cx();
    c.metainfo.persistent.insert("tenant", "blue");
    c.metainfo.transient.insert("hop", "first");
    let (r, back) = match meta(client, c).await {
        Ok(x) => x,
        Err(e) => return vec![e],
    };
    let mut e = Vec::new();
    if r.persistent.get("tenant").map(String::as_str) != Some("blue") {
        e.push(format!(
            "testString(meta): persistent {:?}, want tenant=blue",
            r.persistent
        ));
    }
    if r.transient.get("hop").map(String::as_str) != Some("first") {
        e.push(format!(
            "testString(meta): transient {:?}, want hop=first",
            r.transient
        ));
    }
    if r.persistent.contains_key("hop") {
        e.push("testString(meta): the transient value arrived as persistent".into());
    }
    let want = format!("back-{WEFT_CLIENT}");
    if back.metainfo.backward.get("from-kitex").map(|v| v.as_str()) != Some(want.as_str()) {
        e.push(format!(
            "testString(meta): backward {:?}, want from-kitex={want}",
            back.metainfo.backward
        ));
    }
    e
}

async fn case_deadline(client: &ThriftTestClient) -> Vec<String> {
    let mut e = Vec::new();
    let mut c = cx();
    c.set_timeout(Duration::from_millis(1500));
    match meta(client, c).await {
        Ok((r, _)) if r.timeout_ms > 1000 && r.timeout_ms <= 1500 => {}
        Ok((r, _)) => e.push(format!(
            "testString(meta): Kitex saw an RPC timeout of {} ms, want (1000, 1500]",
            r.timeout_ms
        )),
        Err(err) => e.push(err),
    }
    // Outlives its deadline: ends at about the deadline, as DeadlineExceeded.
    let mut c = cx();
    c.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    match client
        .with_context(&c)
        .test_string("sleep:2000".into())
        .await
        .map(|(v, _)| v)
    {
        Err(s) if s.code() == Code::DeadlineExceeded => {}
        other => e.push(format!(
            "testString(sleep:2000) with a 300 ms deadline: got {other:?}, want DeadlineExceeded"
        )),
    }
    if started.elapsed() > Duration::from_millis(1500) {
        e.push(format!(
            "testString(sleep:2000) with a 300 ms deadline took {:?}",
            started.elapsed()
        ));
    }
    if let Err(err) = client
        .with_context(&cx())
        .test_string("after".into())
        .await
        .map(|(v, _)| v)
    {
        e.push(format!("testString after a deadline: {err}"));
    }
    e
}

async fn case_names(client: &ThriftTestClient) -> Vec<String> {
    match meta(client, cx()).await {
        Err(e) => vec![e],
        Ok((r, _)) => {
            let mut e = Vec::new();
            if r.caller != WEFT_CLIENT {
                e.push(format!(
                    "testString(meta): Kitex saw caller {:?}, want {WEFT_CLIENT:?}",
                    r.caller
                ));
            }
            if (r.service.as_str(), r.method.as_str()) != ("ThriftTest", "testString") {
                e.push(format!(
                    "testString(meta): Kitex saw {}.{}, want ThriftTest.testString",
                    r.service, r.method
                ));
            }
            e
        }
    }
}

async fn case_biz(client: &ThriftTestClient) -> Vec<String> {
    let mut e = Vec::new();
    match client
        .with_context(&cx())
        .test_string("biz:4002".into())
        .await
        .map(|(v, _)| v)
    {
        Err(s) => match BizStatus::of(&s) {
            Some(b)
                if b.code() == 4002
                    && b.message() == "biz from kitex"
                    && b.extra_value("k") == Some("v")
                    && b.extra_value("quote") == Some("a\"b")
                    && b.extra().len() == 2
                    && s.code() == Code::Unknown => {}
            other => e.push(format!(
                "testString(biz:4002): got {s:?} carrying {other:?}"
            )),
        },
        Ok(v) => e.push(format!(
            "testString(biz:4002): got {v:?}, want a business status"
        )),
    }
    match client
        .with_context(&cx())
        .test_string("bizplain:7".into())
        .await
        .map(|(v, _)| v)
    {
        Err(s) => match BizStatus::of(&s) {
            Some(b)
                if b.code() == 7
                    && b.message() == "plain biz from kitex"
                    && b.extra().is_empty() => {}
            other => e.push(format!(
                "testString(bizplain:7): got {s:?} carrying {other:?}"
            )),
        },
        Ok(v) => e.push(format!(
            "testString(bizplain:7): got {v:?}, want a business status"
        )),
    }
    match client
        .with_context(&cx())
        .test_string("plain".into())
        .await
        .map(|(v, _)| v)
    {
        Ok(v) if v == "plain" => {}
        other => e.push(format!("testString after a business status: {other:?}")),
    }
    e
}

async fn weft_client_kitex_server(mode: ConnectionMode, case: &'static str) {
    let mux = matches!(mode, ConnectionMode::Multiplexed);
    let c = Cell {
        peer: PEER,
        direction: "Weft client → Kitex server",
        transport: if mux {
            "TTHeader, Weft mux → Kitex mux server"
        } else {
            "TTHeader, Weft pool → Kitex server"
        },
        protocol: "binary",
        check: case,
    };
    cell(c, async {
        let args: &[&str] = if mux {
            &["server", "-mux"]
        } else {
            &["server"]
        };
        let server = match start_server(&peer("kitex-peer"), args).await {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let client = weft_client(&server.addr, mode);
        match case {
            "battery" => case_battery(&client).await,
            "concurrent" => case_concurrent(&client).await,
            "meta" => case_meta(&client).await,
            "deadline" => case_deadline(&client).await,
            "names" => case_names(&client).await,
            "biz" => case_biz(&client).await,
            other => panic!("no case {other}"),
        }
    })
    .await;
}

macro_rules! cases {
    ($($case:ident),*) => {
        mod kitex_pool_client_weft_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::kitex_client("pool", stringify!($case)).await
                }
            )*
        }
        mod kitex_mux_client_weft_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::kitex_client("mux", stringify!($case)).await
                }
            )*
        }
        mod weft_pool_client_kitex_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::weft_client_kitex_server(super::ConnectionMode::Pooled, stringify!($case)).await
                }
            )*
        }
        mod weft_mux_client_kitex_mux_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::weft_client_kitex_server(super::ConnectionMode::Multiplexed, stringify!($case)).await
                }
            )*
        }
    };
}

cases!(battery, concurrent, meta, deadline, names, biz);
