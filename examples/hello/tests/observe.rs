//! Observability end to end over loopback: the Hello service behind the
//! observed server and client stacks, `/metrics` scraped over HTTP and
//! checked exactly, a trace across two hops, the access log, and `/readyz`
//! during graceful shutdown.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, Notify},
};
use tracing::{
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    Event, Subscriber,
};
use tracing_subscriber::{layer::Context as LayerCx, prelude::*, registry::LookupSpan, Layer};
use weft::core::{
    faststr::FastStr, Address, ClientBuilder, Code, Context, Instance, Registry, RegistryFuture,
    ServerBuilder, ServerHandle, StaticDiscover, Status,
};
use weft::middleware::{
    balance::BalanceConfig,
    observe::admin::{prometheus_builder, readiness, Admin, AdminHandle},
    AccessLog, Backoff, ClientService, ClientStack, HedgeDelay, ObserveLayer, RetryLayer,
    RetryPolicy, ServerStack, System,
};
use weft::thrift::{Protocol, ThriftClientCodec, Transport};
use weft_example_hello::{
    Greeting, Hello, HelloClient, HelloLookupError, HelloRequest, HelloResponse, HelloServer,
    NotFound,
};

// ===== support =====

/// The process-wide Prometheus handle: one global recorder per test binary,
/// so each test uses service names of its own.
fn prometheus() -> metrics_exporter_prometheus_handle::Handle {
    static HANDLE: OnceLock<metrics_exporter_prometheus_handle::Handle> = OnceLock::new();
    HANDLE
        .get_or_init(|| prometheus_builder().install_recorder().unwrap())
        .clone()
}

mod metrics_exporter_prometheus_handle {
    pub(crate) use weft::middleware::observe::admin::metrics_exporter_prometheus::PrometheusHandle as Handle;
}

/// GET `path` from `addr` over a fresh HTTP/1.1 connection: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// A parsed Prometheus text sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().unwrap(),
        });
    }
    out
}

/// The value of the one sample named `name` whose labels include `labels`;
/// `None` when there is none, a panic when there are several.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let hits: Vec<_> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        hits.len() <= 1,
        "several samples match {name} {labels:?}: {hits:?}"
    );
    hits.first().map(|s| s.value)
}

/// Every sample of `name` for `service`, as (method, code) -> value.
fn by_method_code(samples: &[Sample], name: &str, service: &str) -> HashMap<(String, String), f64> {
    samples
        .iter()
        .filter(|s| s.name == name && s.labels.get("service").map(String::as_str) == Some(service))
        .map(|s| {
            (
                (
                    s.labels.get("method").cloned().unwrap_or_default(),
                    s.labels.get("code").cloned().unwrap_or_default(),
                ),
                s.value,
            )
        })
        .collect()
}

/// A Hello handler with scripted outcomes: `greet("fail")` fails,
/// `greet("slow")` outlives any short deadline, `greet("hold")` waits for
/// the test, `greet` forwards to `next` when there is one.
#[derive(Clone, Default)]
struct Scripted {
    entered: Option<mpsc::UnboundedSender<()>>,
    release: Arc<Notify>,
    next: Option<HelloClient<Observed>>,
    /// Calls of `greet("flaky")` so far: the first fails as unavailable.
    flaky: Arc<std::sync::atomic::AtomicU32>,
}

impl Hello for Scripted {
    async fn greet(&self, cx: &mut Context, name: FastStr, times: i64) -> Result<Greeting, Status> {
        if let Some(next) = &self.next {
            return next
                .with_context(&cx.child("Hello", "greet"))
                .greet(name, times)
                .await
                .map(|(v, _)| v);
        }
        match name.as_str() {
            "fail" => return Err(Status::internal("scripted failure")),
            // Only the first call of each fails or is slow: the guard counts.
            "flaky" if self.flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
                return Err(Status::unavailable("scripted: the first call fails"));
            }
            // The first call outlives the backup request's delay.
            "slow-once" if self.flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
            "hold" => {
                if let Some(e) = &self.entered {
                    let _ = e.send(());
                }
                self.release.notified().await;
            }
            _ => {}
        }
        Ok(Greeting {
            text: Some(format!("hello, {name}").into()),
            count: Some(times),
            tags: None,
        })
    }

    async fn lookup(&self, _cx: &mut Context, name: FastStr) -> Result<FastStr, HelloLookupError> {
        match name.as_str() {
            "weft" => Ok("an RPC framework".into()),
            _ => Err(HelloLookupError::Missing(NotFound { name: Some(name) })),
        }
    }

    async fn log(&self, _cx: &mut Context, _line: FastStr) -> Result<(), Status> {
        Ok(())
    }
}

/// The client stack under test: observed, no retries or breakers (so that
/// each outcome is one call, as scripted).
type Observed = ClientService<weft::core::Client<ThriftClientCodec<HelloRequest, HelloResponse>>>;

fn client(addr: &Address, observe: ObserveLayer) -> HelloClient<Observed> {
    client_retrying(addr, observe, None)
}

/// [`client`] with `retry` in its stack.
fn client_retrying(
    addr: &Address,
    observe: ObserveLayer,
    retry: Option<RetryLayer>,
) -> HelloClient<Observed> {
    let discover = StaticDiscover::from_addresses([addr.clone()]);
    let stack = ClientStack::new()
        .observe(Some(observe))
        .retry(retry)
        .method_breaker(None)
        .balance(BalanceConfig {
            breaker: None,
            ..BalanceConfig::default()
        })
        .build(&discover, "Hello", connect)
        .unwrap();
    HelloClient::from_service(stack)
}

/// The connection to one instance the stacks above balance over.
fn connect(inst: &Instance) -> weft::core::Client<ThriftClientCodec<HelloRequest, HelloResponse>> {
    let b = ClientBuilder::new(inst.address.clone());
    let codec = ThriftClientCodec::new(Transport::TTHeader, Protocol::Binary, b.limits_ref());
    b.build(codec)
}

async fn serve(handler: Scripted, stack: ServerStack) -> ServerHandle {
    let limits = weft::core::Limits::default();
    ServerBuilder::new()
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || HelloServer::<Scripted>::codec(&limits),
            stack.build(HelloServer::new(handler)),
        )
        .await
        .unwrap()
}

/// Bytes a [`counting_proxy`] forwarded: client to server, server to client.
#[derive(Clone, Default)]
struct Forwarded {
    up: Arc<std::sync::atomic::AtomicU64>,
    down: Arc<std::sync::atomic::AtomicU64>,
}

impl Forwarded {
    fn get(&self) -> (f64, f64) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.up.load(SeqCst) as f64, self.down.load(SeqCst) as f64)
    }
}

/// A TCP proxy in front of `to` that counts every byte it forwards each
/// way: what really crossed the wire, measured outside Weft.
async fn counting_proxy(to: &Address) -> (Address, Forwarded) {
    let Address::Tcp(to) = to.clone() else {
        panic!("a TCP server")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Address::Tcp(listener.local_addr().unwrap());
    let counts = Forwarded::default();
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(to).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, c.up.clone()));
            tokio::spawn(pipe(sr, cw, c.down.clone()));
        }
    });
    (addr, counts)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        // Counted once forwarded: a count never runs ahead of the peer.
        count.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

fn cx(timeout: Duration) -> Context {
    let mut cx = Context::default();
    cx.set_timeout(timeout);
    cx
}

async fn admin(layers: &[&ObserveLayer], server: Option<&ServerHandle>) -> AdminHandle {
    let mut a = Admin::new().prometheus(prometheus());
    for l in layers {
        a = a.observe(l);
    }
    if let Some(s) = server {
        a = a.watch(s.watch());
    }
    a.serve("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

// ===== metrics =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_counted_exactly_on_both_sides_and_scraped_over_http() {
    let svc = "HelloMetrics";
    let _ = prometheus();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let handler = Scripted {
        entered: Some(entered_tx),
        ..Scripted::default()
    };
    let release = handler.release.clone();
    let server_layer = ObserveLayer::server(System::Thrift).service(svc);
    let server = serve(
        handler,
        ServerStack::new()
            .observe(Some(server_layer.clone()))
            .concurrency_limit(1),
    )
    .await;
    let client_layer = ObserveLayer::client(System::Thrift).service(svc);
    let (proxy, wire) = counting_proxy(server.local_addr()).await;
    let hello = client(&proxy, client_layer.clone());
    let admin = admin(&[&server_layer, &client_layer], Some(&server)).await;
    let long = Duration::from_secs(10);

    // 5 successes, 1 failure, 1 declared exception, 1 lookup success,
    // 1 one-way call.
    for i in 0..5 {
        hello
            .with_context(&cx(long))
            .greet("world".into(), i)
            .await
            .map(|(v, _)| v)
            .unwrap();
    }
    let err = hello
        .with_context(&cx(long))
        .greet("fail".into(), 0)
        .await
        .map(|(v, _)| v)
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    hello
        .with_context(&cx(long))
        .lookup("weft".into())
        .await
        .map(|(v, _)| v)
        .unwrap();
    assert!(matches!(
        hello
            .with_context(&cx(long))
            .lookup("nobody".into())
            .await
            .map(|(v, _)| v),
        Err(HelloLookupError::Missing(_))
    ));
    hello
        .with_context(&cx(long))
        .log("line".into())
        .await
        .map(|(v, _)| v)
        .unwrap();

    // One call held in flight; the next is shed by the concurrency limit.
    let held = {
        let hello = hello.clone();
        let c = cx(long);
        tokio::spawn(async move {
            hello
                .with_context(&c)
                .greet("hold".into(), 0)
                .await
                .map(|(v, _)| v)
        })
    };
    entered.recv().await.unwrap();
    let (_, status) = get(admin.local_addr(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    for side in ["client", "server"] {
        let greet = status["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["side"] == side && m["method"] == "greet" && m["service"] == svc)
            .unwrap_or_else(|| panic!("no {side} greet in {status}"));
        assert_eq!(
            (&greet["calls"], &greet["errors"], &greet["in_flight"]),
            (&6.into(), &1.into(), &1.into()),
            "{status}"
        );
    }
    let shed = hello
        .with_context(&cx(long))
        .greet("x".into(), 0)
        .await
        .map(|(v, _)| v)
        .unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed}");
    release.notify_one();
    held.await.unwrap().unwrap();

    // A deadline the handler outlives.
    let late = hello
        .with_context(&cx(Duration::from_millis(200)))
        .greet("slow".into(), 0)
        .await
        .map(|(v, _)| v)
        .unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");

    // The server ends the slow call at its own copy of the deadline; wait
    // for it to be counted, its late answer written and forwarded.
    let greet = [("service", svc), ("method", "greet")];
    let mut text = String::new();
    for _ in 0..100 {
        let (code, body) = get(admin.local_addr(), "/metrics").await;
        assert_eq!(code, 200);
        text = body;
        let s = parse(&text);
        let done = value(
            &s,
            "weft_server_calls_total",
            &[
                ("service", svc),
                ("method", "greet"),
                ("code", "DEADLINE_EXCEEDED"),
            ],
        );
        let answers = value(&s, "weft_server_response_bytes_count", &greet);
        let sent: f64 = ["greet", "lookup"]
            .iter()
            .filter_map(|m| {
                value(
                    &s,
                    "weft_server_response_bytes_sum",
                    &[("service", svc), ("method", m)],
                )
            })
            .sum();
        if done == Some(1.0) && answers == Some(9.0) && wire.get().1 == sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = parse(&text);
    let expected: HashMap<(String, String), f64> = [
        (("greet", "OK"), 6.0),
        (("greet", "INTERNAL"), 1.0),
        (("greet", "RESOURCE_EXHAUSTED"), 1.0),
        (("greet", "DEADLINE_EXCEEDED"), 1.0),
        (("lookup", "OK"), 2.0),
        (("log", "OK"), 1.0),
    ]
    .into_iter()
    .map(|((m, c), v)| ((m.to_string(), c.to_string()), v))
    .collect();
    for side in ["server", "client"] {
        let calls = by_method_code(&s, &format!("weft_{side}_calls_total"), svc);
        assert_eq!(calls, expected, "{side} calls in\n{text}");
        for (method, n) in [("greet", 9.0), ("lookup", 2.0), ("log", 1.0)] {
            let labels = [("service", svc), ("method", method)];
            let hist = format!("weft_{side}_call_duration_seconds");
            assert_eq!(
                value(&s, &format!("{hist}_count"), &labels),
                Some(n),
                "{side} {method}"
            );
            let inf = [("service", svc), ("method", method), ("le", "+Inf")];
            assert_eq!(
                value(&s, &format!("{hist}_bucket"), &inf),
                Some(n),
                "{side} {method}"
            );
            let gauge = format!("weft_{side}_calls_in_flight");
            assert_eq!(value(&s, &gauge, &labels), Some(0.0), "{side} {method}");
        }
    }
    // Message sizes: as many frames as crossed the wire each way, and the
    // sums of their sizes equal to the bytes the proxy forwarded.
    let sizes = |side: &str, dir: &str, method: &str| {
        let labels = [("service", svc), ("method", method)];
        let name = format!("weft_{side}_{dir}_bytes");
        let count = value(&s, &format!("{name}_count"), &labels).unwrap_or(0.0);
        let sum = value(&s, &format!("{name}_sum"), &labels).unwrap_or(0.0);
        let inf = [("service", svc), ("method", method), ("le", "+Inf")];
        let bucket = value(&s, &format!("{name}_bucket"), &inf).unwrap_or(0.0);
        assert_eq!(bucket, count, "{name} {method}: a histogram\n{text}");
        (count, sum)
    };
    // Requests: every call sent one frame and the server read each (the
    // one-way `log` too, and the shed call, refused below the layer).
    let (up, down) = wire.get();
    let mut up_sum = [0.0, 0.0];
    for (method, n) in [("greet", 9.0), ("lookup", 2.0), ("log", 1.0)] {
        let (cc, cs) = sizes("client", "request", method);
        let (sc, ss) = sizes("server", "request", method);
        assert_eq!((cc, sc), (n, n), "request frames of {method}\n{text}");
        assert_eq!(cs, ss, "request bytes of {method} as sent and as read");
        assert!(cs > 0.0);
        up_sum[0] += cs;
        up_sum[1] += ss;
    }
    assert_eq!(up_sum, [up, up], "request bytes against the wire");
    // Answers: the server answered all 9 greets (the one past its deadline
    // included) and both lookups, the one-way call none.
    let (sg, sg_sum) = sizes("server", "response", "greet");
    let (sl, sl_sum) = sizes("server", "response", "lookup");
    assert_eq!((sg, sl), (9.0, 2.0), "\n{text}");
    assert_eq!(sizes("server", "response", "log").0, 0.0);
    assert_eq!(sg_sum + sl_sum, down, "answer bytes against the wire");
    let (cg, cg_sum) = sizes("client", "response", "greet");
    let (cl, cl_sum) = sizes("client", "response", "lookup");
    assert_eq!((cl, cl_sum), (2.0, sl_sum), "\n{text}");
    assert_eq!(sizes("client", "response", "log").0, 0.0);
    // The client read every answer, unless its own timer ended the slow
    // call before the server's answer to it arrived (both sides time it
    // out at the same deadline): then all but that one whole frame.
    if cg == 9.0 {
        assert_eq!(cg_sum, sg_sum, "greet answer bytes as sent and as read");
    } else {
        assert_eq!(cg, 8.0, "\n{text}");
        assert!(cg_sum > 0.0 && cg_sum < sg_sum, "{cg_sum} of {sg_sum}");
    }

    // The deadline-exceeded call took at least its 200 ms; the others far
    // less than the slow handler's 5 s.
    let hist = "weft_client_call_duration_seconds_bucket";
    let under = |le| {
        value(
            &s,
            hist,
            &[("service", svc), ("method", "greet"), ("le", le)],
        )
    };
    assert_eq!(under("0.1").map(|v| v <= 8.0), Some(true));
    assert_eq!(under("5"), Some(9.0));

    assert_eq!(get(admin.local_addr(), "/healthz").await.0, 200);
    assert_eq!(get(admin.local_addr(), "/nope").await.0, 404);
    admin.shutdown().await;
    server.shutdown().await;
}

// ===== tracing =====

/// One span as the recording layer saw it.
#[derive(Debug, Clone, Default)]
struct SpanRec {
    name: String,
    fields: HashMap<String, String>,
    /// The Weft span id of the span's `tracing` parent.
    parent_span_id: Option<String>,
}

#[derive(Default)]
struct Recorded {
    live: HashMap<u64, (SpanRec, Option<u64>)>,
    closed: Vec<SpanRec>,
    events: Vec<HashMap<String, String>>,
    /// The governance layers' events, with the Weft span id (`span_id`) of
    /// the span they were recorded in.
    governance: Vec<(HashMap<String, String>, Option<String>)>,
}

/// Records spans and access-log events in memory.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerCx<'_, S>) {
        let mut rec = SpanRec {
            name: attrs.metadata().name().to_string(),
            ..SpanRec::default()
        };
        attrs.record(&mut Fields(&mut rec.fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.id().into_u64());
        self.0.lock().live.insert(id.into_u64(), (rec, parent));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerCx<'_, S>) {
        if let Some((rec, _)) = self.0.lock().live.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerCx<'_, S>) {
        let target = event.metadata().target();
        if target == "weft::access" {
            let mut f = HashMap::new();
            event.record(&mut Fields(&mut f));
            self.0.lock().events.push(f);
        } else if target.starts_with("weft_middleware") {
            let mut f = HashMap::new();
            event.record(&mut Fields(&mut f));
            let mut r = self.0.lock();
            let in_span = ctx
                .event_span(event)
                .and_then(|s| r.live.get(&s.id().into_u64()))
                .and_then(|(s, _)| s.fields.get("span_id").cloned());
            r.governance.push((f, in_span));
        }
    }

    fn on_close(&self, id: Id, _: LayerCx<'_, S>) {
        let mut r = self.0.lock();
        if let Some((mut rec, parent)) = r.live.remove(&id.into_u64()) {
            rec.parent_span_id = parent
                .and_then(|p| r.live.get(&p))
                .and_then(|(p, _)| p.fields.get("span_id").cloned());
            r.closed.push(rec);
        }
    }
}

fn recorder() -> Recorder {
    static REC: OnceLock<Recorder> = OnceLock::new();
    REC.get_or_init(|| {
        let rec = Recorder::default();
        tracing_subscriber::registry().with(rec.clone()).init();
        rec
    })
    .clone()
}

fn spans_of(rec: &Recorder, trace_id: &str) -> Vec<SpanRec> {
    rec.0
        .lock()
        .closed
        .iter()
        .filter(|s| s.fields.get("trace_id").map(String::as_str) == Some(trace_id))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_crosses_two_hops_with_correct_parents() {
    let rec = recorder();
    // B: the back end; A: forwards greet to B; the test calls A.
    let b = serve(
        Scripted::default(),
        ServerStack::new().observe(Some(ObserveLayer::server(System::Thrift).service("HelloB"))),
    )
    .await;
    let a = serve(
        Scripted {
            next: Some(client(b.local_addr(), ObserveLayer::client(System::Thrift))),
            ..Scripted::default()
        },
        ServerStack::new().observe(Some(ObserveLayer::server(System::Thrift).service("HelloA"))),
    )
    .await;
    let hello = client(a.local_addr(), ObserveLayer::client(System::Thrift));
    let g = hello
        .with_context(&cx(Duration::from_secs(10)))
        .greet("traced".into(), 1)
        .await
        .map(|(v, _)| v)
        .unwrap();
    assert_eq!(g.text.as_deref(), Some("hello, traced"));

    // The root: the test's client span, the one with no Weft parent whose
    // peer is A.
    let a_port = match a.local_addr() {
        Address::Tcp(sa) => sa.port().to_string(),
        Address::Unix(_) | Address::Host(..) => unreachable!(),
    };
    let b_port = match b.local_addr() {
        Address::Tcp(sa) => sa.port().to_string(),
        Address::Unix(_) | Address::Host(..) => unreachable!(),
    };
    let root = rec
        .0
        .lock()
        .closed
        .iter()
        .find(|s| {
            s.name == "rpc.client"
                && s.fields.get("server.port") == Some(&a_port)
                && !s.fields.contains_key("parent_span_id")
        })
        .cloned()
        .expect("the root client span");
    let trace = root.fields["trace_id"].clone();
    assert_eq!(trace.len(), 32);
    let spans = spans_of(&rec, &trace);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let find = |name: &str, service: &str| {
        spans
            .iter()
            .find(|s| {
                s.name == name && s.fields.get("rpc.service").map(String::as_str) == Some(service)
            })
            .unwrap_or_else(|| panic!("no {name} of {service} in {spans:#?}"))
            .clone()
    };
    let server_a = find("rpc.server", "HelloA");
    let client_a = spans
        .iter()
        .find(|s| s.name == "rpc.client" && s.fields.get("server.port") == Some(&b_port))
        .expect("A's client span")
        .clone();
    let server_b = find("rpc.server", "HelloB");
    let id = |s: &SpanRec| s.fields["span_id"].clone();
    // Across processes: the server's Weft parent is the calling client span.
    assert_eq!(server_a.fields.get("parent_span_id"), Some(&id(&root)));
    assert_eq!(server_b.fields.get("parent_span_id"), Some(&id(&client_a)));
    // Within A: the client span is a child of the server span, in Weft's
    // ids and in tracing's own tree.
    assert_eq!(client_a.fields.get("parent_span_id"), Some(&id(&server_a)));
    assert_eq!(client_a.parent_span_id, Some(id(&server_a)));
    let all: std::collections::HashSet<_> = spans.iter().map(id).collect();
    assert_eq!(all.len(), 4, "span ids are distinct");
    for s in &spans {
        assert_eq!(s.fields["rpc.system"], "thrift");
        assert_eq!(s.fields["rpc.method"], "greet");
        assert_eq!(s.fields["rpc.response.status_code"], "OK");
        assert_eq!(s.fields["network.peer.address"], "127.0.0.1");
    }
    assert_eq!(server_b.fields["otel.name"], "HelloB/greet");
    a.shutdown().await;
    b.shutdown().await;
}

/// The `rpc.attempt` spans whose parent is the call span `call`, by
/// attempt number.
fn attempts_of(rec: &Recorder, call: &SpanRec) -> Vec<SpanRec> {
    let id = call.fields["span_id"].clone();
    let mut v: Vec<SpanRec> = rec
        .0
        .lock()
        .closed
        .iter()
        .filter(|s| s.name == "rpc.attempt" && s.parent_span_id.as_ref() == Some(&id))
        .cloned()
        .collect();
    v.sort_by_key(|s| s.fields["rpc.attempt"].parse::<u32>().unwrap());
    v
}

/// The client span of the only call to the server listening on `port`.
fn client_span_to(rec: &Recorder, port: &str) -> SpanRec {
    let r = rec.0.lock();
    let spans: Vec<_> = r
        .closed
        .iter()
        .filter(|s| {
            s.name == "rpc.client" && s.fields.get("server.port").map(String::as_str) == Some(port)
        })
        .collect();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    spans[0].clone()
}

fn port_of(a: &Address) -> String {
    match a {
        Address::Tcp(sa) => sa.port().to_string(),
        Address::Unix(_) | Address::Host(..) => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_retried_once_records_two_attempt_spans_under_its_call_span() {
    let rec = recorder();
    let server = serve(
        Scripted::default(),
        ServerStack::new().observe(Some(
            ObserveLayer::server(System::Thrift).service("HelloRetry"),
        )),
    )
    .await;
    let policy = RetryPolicy::new()
        .max_attempts(3)
        .backoff(Backoff::fixed(Duration::from_millis(1)));
    let hello = client_retrying(
        server.local_addr(),
        ObserveLayer::client(System::Thrift),
        Some(RetryLayer::new(policy).idempotent(["greet"])),
    );
    let g = hello
        .with_context(&cx(Duration::from_secs(10)))
        .greet("flaky".into(), 1)
        .await
        .map(|(v, _)| v)
        .unwrap();
    assert_eq!(g.text.as_deref(), Some("hello, flaky"));

    let port = port_of(server.local_addr());
    let call = client_span_to(&rec, &port);
    assert_eq!(call.fields["rpc.response.status_code"], "OK");
    let attempts = attempts_of(&rec, &call);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    for (i, (a, code)) in attempts.iter().zip(["UNAVAILABLE", "OK"]).enumerate() {
        assert_eq!(a.fields["rpc.attempt"], (i + 1).to_string());
        assert_eq!(a.fields["weft.backup"], "false");
        assert_eq!(a.fields["rpc.response.status_code"], code, "{a:#?}");
        // The balancer named the instance of each attempt.
        assert_eq!(a.fields["network.peer.address"], "127.0.0.1");
        assert_eq!(a.fields["network.peer.port"], port);
    }
    // The server saw both attempts, each its own call span.
    let served = rec
        .0
        .lock()
        .closed
        .iter()
        .filter(|s| s.name == "rpc.server" && s.fields["rpc.service"] == "HelloRetry")
        .count();
    assert_eq!(served, 2);
    // One retry event, on the call's span.
    let retries: Vec<_> = rec
        .0
        .lock()
        .governance
        .iter()
        .filter(|(f, _)| f.get("message").map(String::as_str) == Some("retry scheduled"))
        .filter(|(_, span)| span.as_ref() == Some(&call.fields["span_id"]))
        .cloned()
        .collect();
    assert_eq!(retries.len(), 1, "{retries:#?}");
    assert_eq!(retries[0].0["rpc.attempt"], "2");
    assert_eq!(retries[0].0["error.type"], "UNAVAILABLE");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_request_records_a_backup_attempt_and_the_loser_cancelled() {
    let rec = recorder();
    let server = serve(
        Scripted::default(),
        ServerStack::new().observe(Some(
            ObserveLayer::server(System::Thrift).service("HelloHedge"),
        )),
    )
    .await;
    let policy = RetryPolicy::new()
        .max_attempts(2)
        .hedge(HedgeDelay::fixed(Duration::from_millis(50)));
    let hello = client_retrying(
        server.local_addr(),
        ObserveLayer::client(System::Thrift),
        Some(RetryLayer::new(policy).idempotent(["greet"])),
    );
    let g = hello
        .with_context(&cx(Duration::from_secs(10)))
        .greet("slow-once".into(), 1)
        .await
        .map(|(v, _)| v)
        .unwrap();
    assert_eq!(g.text.as_deref(), Some("hello, slow-once"));

    let call = client_span_to(&rec, &port_of(server.local_addr()));
    let attempts = attempts_of(&rec, &call);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].fields["weft.backup"], "false");
    assert_eq!(attempts[0].fields["rpc.response.status_code"], "CANCELLED");
    assert_eq!(attempts[1].fields["weft.backup"], "true");
    assert_eq!(attempts[1].fields["rpc.response.status_code"], "OK");
    let backups = rec
        .0
        .lock()
        .governance
        .iter()
        .filter(|(f, span)| {
            f.get("message").map(String::as_str) == Some("backup request sent")
                && span.as_ref() == Some(&call.fields["span_id"])
        })
        .count();
    assert_eq!(backups, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_samples_one_in_two_and_every_failure() {
    let rec = recorder();
    let svc = "HelloAccess";
    let server = serve(
        Scripted::default(),
        ServerStack::new().observe(Some(
            ObserveLayer::server(System::Thrift)
                .service(svc)
                .access_log(Some(AccessLog::one_in(2.try_into().unwrap()).errors(true))),
        )),
    )
    .await;
    let hello = client(server.local_addr(), ObserveLayer::client(System::Thrift));
    // Calls 0..=4 succeed (0, 2, 4 sampled), call 5 fails (logged anyway).
    for i in 0..5 {
        hello
            .with_context(&cx(Duration::from_secs(10)))
            .greet("x".into(), i)
            .await
            .map(|(v, _)| v)
            .unwrap();
    }
    hello
        .with_context(&cx(Duration::from_secs(10)))
        .greet("fail".into(), 5)
        .await
        .map(|(v, _)| v)
        .unwrap_err();
    server.shutdown().await;
    let events: Vec<_> = rec
        .0
        .lock()
        .events
        .iter()
        .filter(|e| e.get("rpc.service").map(String::as_str) == Some(svc))
        .cloned()
        .collect();
    let codes: Vec<_> = events.iter().map(|e| e["code"].as_str()).collect();
    assert_eq!(codes, ["OK", "OK", "OK", "INTERNAL"], "{events:#?}");
    for e in &events {
        assert_eq!(e["rpc.method"], "greet");
        assert_eq!(e["side"], "server");
        assert!(e["peer"].starts_with("127.0.0.1:"), "{e:?}");
        assert_eq!(e["trace_id"].len(), 32);
        assert!(e.contains_key("latency_us"));
    }
    // The logged trace id is the one the server span carried.
    let tid = &events[0]["trace_id"];
    let spans = spans_of(&rec, tid);
    assert!(spans.iter().any(|s| s.name == "rpc.server"), "{spans:#?}");
}

// ===== readiness =====

/// A registry whose deregistration waits until the test lets it finish.
#[derive(Default)]
struct SlowRegistry {
    deregistering: Notify,
    finish: Notify,
}

impl Registry for SlowRegistry {
    fn register<'a>(&'a self, _: &'a str, _: &'a Instance) -> RegistryFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn deregister<'a>(&'a self, _: &'a str, _: &'a Instance) -> RegistryFuture<'a> {
        Box::pin(async move {
            self.deregistering.notify_one();
            self.finish.notified().await;
            Ok(())
        }) as Pin<Box<dyn Future<Output = _> + Send>>
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_when_graceful_shutdown_starts_before_deregistration_ends() {
    let registry = Arc::new(SlowRegistry::default());
    let limits = weft::core::Limits::default();
    let server = ServerBuilder::new()
        .register(
            registry.clone(),
            "HelloReady",
            Instance::new("127.0.0.1:1".parse::<Address>().unwrap()),
        )
        .deregister_grace(Duration::from_millis(10))
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || HelloServer::<Scripted>::codec(&limits),
            HelloServer::new(Scripted::default()),
        )
        .await
        .unwrap();
    let flag = readiness();
    let admin = Admin::new()
        .watch(server.watch())
        .readiness(&flag)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = admin.local_addr();
    // Not ready until the program says so.
    assert_eq!(get(addr, "/readyz").await, (503, "not ready\n".into()));
    flag.set_ready(true);
    assert_eq!(get(addr, "/readyz").await, (200, "ready\n".into()));
    let server_addr = server.local_addr().clone();
    let shutdown = tokio::spawn(server.shutdown());
    registry.deregistering.notified().await;
    // Deregistration has begun and not ended: already not ready, while
    // the server still answers calls.
    assert_eq!(get(addr, "/readyz").await.0, 503);
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (_, status) = get(addr, "/status").await;
    assert!(status.contains("\"shutting_down\":true"), "{status}");
    assert!(status.contains("\"ready\":false"), "{status}");
    let hello = HelloClient::new(
        ClientBuilder::new(server_addr),
        Transport::TTHeader,
        Protocol::Binary,
    );
    hello
        .with_context(&cx(Duration::from_secs(5)))
        .greet("still".into(), 1)
        .await
        .map(|(v, _)| v)
        .unwrap();
    assert!(!shutdown.is_finished());
    registry.finish.notify_one();
    shutdown.await.unwrap();
    assert_eq!(get(addr, "/readyz").await.0, 503);
    // Without a recorder, /metrics says so.
    assert_eq!(get(addr, "/metrics").await.0, 404);
    admin.shutdown().await;
}

/// Sampling is parent-based, as OpenTelemetry's default sampler: a trace a
/// client starts unsampled (`sample_ratio(0.0)`) makes no span in any hop,
/// though the calls succeed and still cross with a `traceparent`; a sampled
/// parent is followed by a server whose own ratio is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_trace_makes_no_span_anywhere_and_a_sampled_parent_is_followed() {
    let rec = recorder();
    let b = serve(
        Scripted::default(),
        ServerStack::new().observe(Some(
            ObserveLayer::server(System::Thrift).service("SampleB"),
        )),
    )
    .await;
    let a = serve(
        Scripted {
            next: Some(client(b.local_addr(), ObserveLayer::client(System::Thrift))),
            ..Scripted::default()
        },
        ServerStack::new().observe(Some(
            ObserveLayer::server(System::Thrift)
                .service("SampleA")
                .sample_ratio(0.0),
        )),
    )
    .await;
    let a_port = port_of(a.local_addr());
    let spans_here = |rec: &Recorder| -> Vec<SpanRec> {
        rec.0
            .lock()
            .closed
            .iter()
            .filter(|s| {
                matches!(
                    s.fields.get("rpc.service").map(String::as_str),
                    Some("SampleA" | "SampleB")
                ) || s.fields.get("server.port") == Some(&a_port)
            })
            .cloned()
            .collect()
    };

    let unsampled = client(
        a.local_addr(),
        ObserveLayer::client(System::Thrift).sample_ratio(0.0),
    );
    for _ in 0..3 {
        let g = unsampled.greet("quiet".into(), 1).await.unwrap();
        assert_eq!(g.text.as_deref(), Some("hello, quiet"));
    }
    let quiet = spans_here(&rec);
    assert!(quiet.is_empty(), "spans of an unsampled trace: {quiet:#?}");

    let sampled = client(a.local_addr(), ObserveLayer::client(System::Thrift));
    sampled.greet("loud".into(), 1).await.unwrap();
    let spans = spans_here(&rec);
    let names: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.fields.get("rpc.service").cloned().unwrap_or_default(),
            )
        })
        .collect();
    // The test's client span to A, A's server span, B's server span.
    assert_eq!(spans.len(), 3, "{names:?}");
    let trace = &spans[0].fields["trace_id"];
    assert!(
        spans.iter().all(|s| &s.fields["trace_id"] == trace),
        "{spans:#?}"
    );
    assert!(
        names
            .iter()
            .any(|(n, s)| n == "rpc.server" && s == "SampleA"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|(n, s)| n == "rpc.server" && s == "SampleB"),
        "{names:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The balancer reports its discovery set: its size, and how many sets it
/// has taken, per service, as the set changes under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovery_set_and_its_updates_are_reported_per_service() {
    let svc = "HelloDiscovery";
    let handle = prometheus();
    let addr = |p: u16| -> Address { format!("127.0.0.1:{p}").parse().unwrap() };
    let discover = StaticDiscover::from_addresses([addr(1), addr(2)]);
    let _stack = ClientStack::new().build(&discover, svc, connect).unwrap();
    let read = || {
        let samples = parse(&handle.render());
        (
            value(
                &samples,
                "weft_client_discovery_instances",
                &[("service", svc)],
            ),
            value(
                &samples,
                "weft_client_discovery_updates_total",
                &[("service", svc)],
            ),
        )
    };
    assert_eq!(read(), (Some(2.0), Some(1.0)));
    discover.set([Instance::new(addr(3))]);
    // The balancer follows the set in a task of its own: wait (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while read() != (Some(1.0), Some(2.0)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(read(), (Some(1.0), Some(2.0)));
}

/// A watched server's connections, open and accepted, in `/metrics` and
/// `/status`, following connections as they come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_connections_are_scraped_as_they_come_and_go() {
    let _ = prometheus();
    let server = serve(Scripted::default(), ServerStack::new()).await;
    let admin = admin(&[], Some(&server)).await;
    let label = server.local_addr().to_string();
    let scrape = || async {
        let (_, body) = get(admin.local_addr(), "/metrics").await;
        let samples = parse(&body);
        (
            value(
                &samples,
                "weft_server_connections_open",
                &[("addr", &label)],
            ),
            value(
                &samples,
                "weft_server_connections_accepted_total",
                &[("addr", &label)],
            ),
        )
    };
    let until = |want: (Option<f64>, Option<f64>)| {
        let scrape = &scrape;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let got = scrape().await;
                if got == want || tokio::time::Instant::now() > deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let tcp = match server.local_addr() {
        Address::Tcp(a) => *a,
        other => panic!("not TCP: {other}"),
    };
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
    }
    assert_eq!(until((Some(3.0), Some(3.0))).await, (Some(3.0), Some(3.0)));
    let (_, status) = get(admin.local_addr(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["servers"][0]["open"], 3, "{status}");
    assert_eq!(status["servers"][0]["address"], label.as_str(), "{status}");
    conns.truncate(1);
    assert_eq!(until((Some(1.0), Some(3.0))).await, (Some(1.0), Some(3.0)));
    drop(conns);
    admin.shutdown().await;
    server.shutdown().await;
}

/// `/status` shows the balancer of a client stack built with an observed
/// layer: its instances with their breaker state, and no longer once the
/// stack is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_balancers_instances_and_forgets_a_dropped_one() {
    let svc = "HelloBalancers";
    let _ = prometheus();
    let a = serve(Scripted::default(), ServerStack::new()).await;
    let b = serve(Scripted::default(), ServerStack::new()).await;
    let layer = ObserveLayer::client(System::Thrift).service(svc);
    let discover = StaticDiscover::from_addresses([a.local_addr().clone(), b.local_addr().clone()]);
    let stack = ClientStack::new()
        .observe(Some(layer.clone()))
        .build(&discover, svc, connect)
        .unwrap();
    let hello = HelloClient::from_service(stack);
    hello.greet("world".into(), 1).await.unwrap();
    let admin = admin(&[&layer], None).await;

    let (_, body) = get(admin.local_addr(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let balancers = status["balancers"].as_array().expect("a balancers list");
    assert_eq!(balancers.len(), 1, "{status}");
    assert_eq!(balancers[0]["service"], svc);
    let mut addrs: Vec<String> = balancers[0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["breaker"], "closed", "{i}");
            assert_eq!(i["in_flight"], 0, "{i}");
            i["address"].as_str().unwrap().to_owned()
        })
        .collect();
    addrs.sort();
    let mut want = vec![a.local_addr().to_string(), b.local_addr().to_string()];
    want.sort();
    assert_eq!(addrs, want);

    drop(hello);
    let (_, body) = get(admin.local_addr(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["balancers"], serde_json::json!([]), "{status}");
    admin.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Hold `n` calls of `greet("hold")` on `hello` in the handler until the
/// returned release is called; returns once all `n` are in the handler.
async fn hold<T>(
    hello: &HelloClient<T>,
    entered: &mut mpsc::UnboundedReceiver<()>,
    n: usize,
) -> tokio::task::JoinSet<()>
where
    HelloClient<T>: Clone + Send + 'static,
    T: weft::core::tower::Service<
            weft::core::Request<HelloRequest>,
            Response = weft::core::Response<HelloResponse>,
            Error = Status,
        > + Clone
        + Send
        + Sync
        + 'static,
    T::Future: Send,
{
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..n {
        let hello = hello.clone();
        calls.spawn(async move {
            hello.greet("hold".into(), 0).await.unwrap();
        });
    }
    for _ in 0..n {
        entered.recv().await.unwrap();
    }
    calls
}

/// Let held calls go one at a time (a `Notify` keeps one wake-up at most)
/// and wait for each to end.
async fn release_all(release: &Notify, mut calls: tokio::task::JoinSet<()>) {
    while !calls.is_empty() {
        release.notify_one();
        calls.join_next().await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_hits_and_misses_mux_calls_in_flight_and_the_connection_limit_are_scraped() {
    let _ = prometheus();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let handler = Scripted {
        entered: Some(entered_tx),
        ..Scripted::default()
    };
    let release = handler.release.clone();
    let limits = weft::core::Limits {
        max_connections: 3,
        ..weft::core::Limits::default()
    };
    let server = ServerBuilder::new()
        .limits(limits.clone())
        .serve(
            &"127.0.0.1:0".parse().unwrap(),
            move || HelloServer::<Scripted>::codec(&limits),
            HelloServer::new(handler),
        )
        .await
        .unwrap();
    let admin = admin(&[], Some(&server)).await;
    let peer = server.local_addr().to_string();
    let scrape = |names: &'static [&'static str]| {
        let admin = admin.local_addr();
        let peer = peer.clone();
        async move {
            let (_, body) = get(admin, "/metrics").await;
            let s = parse(&body);
            names
                .iter()
                .map(|n| {
                    let label = if n.starts_with("weft_server") {
                        "addr"
                    } else {
                        "peer"
                    };
                    value(&s, n, &[(label, &peer)])
                })
                .collect::<Vec<_>>()
        }
    };
    const POOL: &[&str] = &[
        "weft_client_pool_hits_total",
        "weft_client_pool_misses_total",
        "weft_client_pool_connections_open",
        "weft_client_pool_connections_idle",
    ];

    // Pooled: the first call connects (a miss), the next two reuse it.
    let pooled = HelloClient::new(
        ClientBuilder::new(server.local_addr().clone()).mode(weft::core::ConnectionMode::Pooled),
        Transport::TTHeader,
        Protocol::Binary,
    );
    for i in 0..3 {
        pooled.greet("pool".into(), i).await.unwrap();
    }
    let one = Some(1.0);
    assert_eq!(scrape(POOL).await, [Some(2.0), one, one, one]);
    // Two at once: one takes the idle connection, the other connects.
    let calls = hold(&pooled, &mut entered, 2).await;
    assert_eq!(
        scrape(POOL).await,
        [Some(3.0), Some(2.0), Some(2.0), Some(0.0)]
    );
    release_all(&release, calls).await;
    assert_eq!(
        scrape(POOL).await,
        [Some(3.0), Some(2.0), Some(2.0), Some(2.0)]
    );

    // Multiplexed: calls in flight on the one connection, then none.
    let mux = HelloClient::new(
        ClientBuilder::new(server.local_addr().clone()),
        Transport::TTHeader,
        Protocol::Binary,
    );
    mux.greet("mux".into(), 0).await.unwrap();
    const MUX: &[&str] = &["weft_client_mux_calls_in_flight"];
    assert_eq!(scrape(MUX).await, [Some(0.0)]);
    let calls = hold(&mux, &mut entered, 3).await;
    assert_eq!(scrape(MUX).await, [Some(3.0)]);
    release_all(&release, calls).await;
    assert_eq!(scrape(MUX).await, [Some(0.0)]);

    // Two pooled connections and the multiplexed one: the server is at its
    // limit of 3 and has stopped accepting, once.
    const LIMIT: &[&str] = &[
        "weft_server_connections_open",
        "weft_server_connection_limit_reached_total",
    ];
    let mut got = scrape(LIMIT).await;
    for _ in 0..500 {
        if got == [Some(3.0), Some(1.0)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        got = scrape(LIMIT).await;
    }
    assert_eq!(got, [Some(3.0), Some(1.0)]);
    drop((pooled, mux));
    admin.shutdown().await;
    server.shutdown().await;
}

/// `/status` shows the server stack's limits (current value, calls in
/// flight, sheds) and the client stack's method breakers (state per
/// method), and forgets them once the stacks are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_limits_and_method_breakers_while_their_stacks_live() {
    let svc = "HelloLimits";
    let _ = prometheus();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let handler = Scripted {
        entered: Some(entered_tx),
        ..Scripted::default()
    };
    let release = handler.release.clone();
    let server_layer = ObserveLayer::server(System::Thrift).service(svc);
    let adaptive = weft::middleware::limit::AdaptiveConfig {
        initial: 7,
        ..weft::middleware::limit::AdaptiveConfig::default()
    };
    let server = serve(
        handler,
        ServerStack::new()
            .observe(Some(server_layer.clone()))
            .rate_limit(1000, Duration::from_secs(1), 50)
            .concurrency_limit(1)
            .adaptive_limit(adaptive),
    )
    .await;
    let client_layer = ObserveLayer::client(System::Thrift).service(svc);
    let discover = StaticDiscover::from_addresses([server.local_addr().clone()]);
    let breaker = weft::middleware::breaker::BreakerConfig {
        min_samples: 1000,
        consecutive_failures: Some(2),
        open_for: Duration::from_secs(60),
        ..weft::middleware::breaker::BreakerConfig::default()
    };
    let hello = HelloClient::from_service(
        ClientStack::new()
            .observe(Some(client_layer.clone()))
            .retry(None)
            .method_breaker(Some(breaker))
            .balance(BalanceConfig {
                breaker: None,
                ..BalanceConfig::default()
            })
            .build(&discover, svc, connect)
            .unwrap(),
    );
    let admin = admin(&[&server_layer, &client_layer], None).await;
    let status = || async {
        let (_, body) = get(admin.local_addr(), "/status").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };

    // One call held: in flight at the concurrency and the adaptive limit;
    // the next is shed by the concurrency limit (the adaptive one, below
    // it, never sees it).
    let held = hold(&hello, &mut entered, 1).await;
    let shed = hello.greet("x".into(), 0).await.unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed}");
    let s = status().await;
    assert_eq!(
        s["limits"],
        serde_json::json!([
            {"kind": "rate", "per_second": 1000.0, "burst": 50, "shed": 0},
            {"kind": "concurrency", "limit": 1, "in_flight": 1, "shed": 1},
            {"kind": "adaptive", "limit": 7, "in_flight": 1, "shed": 0},
        ]),
        "{s}"
    );
    release_all(&release, held).await;

    // `lookup` answers; two failures in a row open `greet`'s breaker.
    hello.lookup("weft".into()).await.unwrap();
    for _ in 0..2 {
        let e = hello.greet("fail".into(), 0).await.unwrap_err();
        assert_eq!(e.code(), Code::Internal, "{e}");
    }
    let s = status().await;
    let mut breakers: Vec<_> = s["method_breakers"]
        .as_array()
        .expect("a method_breakers list")
        .iter()
        .map(|b| {
            // Keyed by the service the call names (the observe layer's
            // `service` renames only its own series).
            assert_eq!(b["service"], "Hello", "{b}");
            (
                b["method"].as_str().unwrap().to_owned(),
                b["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    breakers.sort();
    let want = [("greet", "open"), ("lookup", "closed")].map(|(m, s)| (m.into(), s.into()));
    assert_eq!(breakers, want, "{s}");
    assert_eq!(s["limits"][1]["in_flight"], 0, "{s}");

    drop(hello);
    server.shutdown().await;
    let s = status().await;
    assert_eq!(s["method_breakers"], serde_json::json!([]), "{s}");
    assert_eq!(s["limits"], serde_json::json!([]), "{s}");
    admin.shutdown().await;
}
