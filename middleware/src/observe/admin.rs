//! The admin endpoint: an HTTP/1.1 listener serving `/metrics`
//! (Prometheus text), `/healthz`, `/readyz`, `/status` (JSON) and
//! `/loglevel` (the log filter, switched at run time), opt-in behind the
//! `admin` feature.
//!
//! `/loglevel` changes whatever the program's subscriber filters by: Weft
//! installs no subscriber and does not depend on `tracing-subscriber`; the
//! program hands [`Admin::log_filter`] a function that applies a filter
//! directive, typically through a `tracing_subscriber::reload` handle:
//!
//! ```ignore
//! let (filter, reload) = tracing_subscriber::reload::Layer::new(EnvFilter::new("info"));
//! tracing_subscriber::registry().with(filter).with(fmt::layer()).init();
//! let admin = Admin::new().log_filter(move |directive: &str| {
//!     let f = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
//!     reload.reload(f).map_err(|e| e.to_string())
//! });
//! // curl -X PUT 'http://127.0.0.1:9100/loglevel?filter=info,weft_middleware=debug'
//! ```
//!
//! It lives here, beside the [`ObserveLayer`]s whose method tables
//! `/status` reads, rather than in a crate of its own: the endpoint needs
//! those tables and the server's [`ServerWatch`], both of which this crate
//! already sees, and a feature keeps hyper and the Prometheus exporter out
//! of every build that does not ask for them.
//!
//! ```no_run
//! # async fn run(server: weft_core::ServerHandle, layer: weft_middleware::ObserveLayer) -> std::io::Result<()> {
//! use weft_middleware::observe::admin::{prometheus_builder, Admin};
//!
//! // Before the first call: handles registered earlier record nothing.
//! let prometheus = prometheus_builder().install_recorder().expect("one global recorder");
//! let admin = Admin::new()
//!     .prometheus(prometheus)
//!     .observe(&layer)
//!     .watch(server.watch())
//!     .serve("127.0.0.1:9100".parse().unwrap())
//!     .await?;
//! // ... `server.shutdown()` flips /readyz to 503 at once.
//! # admin.shutdown().await; Ok(()) }
//! ```

use std::{
    convert::Infallible,
    fmt::Write as _,
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use weft_core::ServerWatch;

use super::{table::MethodTable, ObserveLayer};

/// Re-exported: the recorder `/metrics` renders.
pub use metrics_exporter_prometheus;

/// Histogram buckets (seconds) for every `_seconds` metric: 100 µs to 10 s,
/// about three per decade, which covers an RPC's latency from a loopback
/// hop to a deadline.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Histogram buckets (bytes) for every `_bytes` metric: 64 B to 16 MiB
/// (the default frame limit), a factor of four apart.
pub const SIZE_BUCKETS: [f64; 10] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// How long a connection to the endpoint may take to send its request
/// headers: a scraper sends them at once, a stuck peer should not hold a
/// task.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the Prometheus recorder drains its histogram samples when
/// nothing scrapes, so they do not pile up.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A Prometheus builder with [`LATENCY_BUCKETS`] for `_seconds` metrics
/// and [`SIZE_BUCKETS`] for `_bytes` metrics (histograms, not summaries).
/// Install it yourself (`install_recorder()`): the global recorder is the
/// program's choice.
pub fn prometheus_builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &SIZE_BUCKETS))
        .expect("the buckets are not empty")
}

/// Readiness set by the program itself, beside the servers' shutdown: not
/// ready until warmed up, say. Cheap to clone; clones share the flag.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Mark ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether marked ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Applies a log filter directive, or says why it cannot.
type SetFilter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// The log filter switch of `/loglevel`: the program's function and the
/// directive last applied through it.
struct LogFilter {
    set: Box<SetFilter>,
    current: parking_lot::Mutex<Option<String>>,
}

/// Configures the admin endpoint.
#[derive(Default)]
#[must_use]
pub struct Admin {
    prometheus: Option<PrometheusHandle>,
    tables: Vec<Arc<MethodTable>>,
    servers: Vec<ServerWatch>,
    views: Vec<Arc<super::views::Views>>,
    readiness: Option<Readiness>,
    log_filter: Option<LogFilter>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("prometheus", &self.prometheus.is_some())
            .field("tables", &self.tables.len())
            .field("servers", &self.servers.len())
            .field("readiness", &self.readiness)
            .field("log_filter", &self.log_filter.is_some())
            .finish()
    }
}

impl Admin {
    /// An endpoint with nothing to report yet: `/metrics` answers 404
    /// until [`Admin::prometheus`] is set.
    pub fn new() -> Self {
        Admin::default()
    }

    /// Serve `/metrics` from this recorder's handle.
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Report the methods `layer`'s services have seen in `/status`, and
    /// the balancers of the client stacks built with it (their instances,
    /// calls in flight, latency and breaker state).
    pub fn observe(mut self, layer: &ObserveLayer) -> Self {
        self.tables.push(layer.table().clone());
        self.views.push(layer.views().clone());
        self
    }

    /// Not ready once `server`'s shutdown begins; its connections in
    /// `/status`.
    pub fn watch(mut self, server: ServerWatch) -> Self {
        self.servers.push(server);
        self
    }

    /// A flag the program sets; `/readyz` also needs it set. Default none
    /// (ready while no watched server shuts down).
    pub fn readiness(mut self, readiness: &Readiness) -> Self {
        self.readiness = Some(readiness.clone());
        self
    }

    /// Serve `/loglevel`: `PUT /loglevel?filter=DIRECTIVE` (or `POST`)
    /// calls `set` with the percent-decoded directive (`debug`,
    /// `info,weft_middleware=debug`, whatever the program's filter parses)
    /// and answers 200, or 400 with `set`'s error; `GET /loglevel` answers
    /// the directive last applied. `initial` is what `GET` answers before
    /// any change. Default none: `/loglevel` answers 404.
    pub fn log_filter<F>(mut self, initial: impl Into<String>, set: F) -> Self
    where
        F: Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    {
        self.log_filter = Some(LogFilter {
            set: Box::new(set),
            current: parking_lot::Mutex::new(Some(initial.into())),
        });
        self
    }

    /// Bind `addr` and serve. Returns once listening.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<AdminHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(State {
            admin: self,
            started: Instant::now(),
        });
        let (stop, stopped) = oneshot::channel();
        let join = tokio::spawn(accept(listener, state, stopped));
        Ok(AdminHandle {
            local_addr,
            stop,
            join,
        })
    }

    fn ready(&self) -> bool {
        self.readiness.as_ref().is_none_or(Readiness::is_ready)
            && !self.servers.iter().any(ServerWatch::is_shutting_down)
    }
}

/// A new [`Readiness`] flag, not ready until set.
pub fn readiness() -> Readiness {
    Readiness(Arc::new(AtomicBool::new(false)))
}

/// A running admin endpoint.
#[derive(Debug)]
pub struct AdminHandle {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    join: JoinHandle<()>,
}

impl AdminHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop listening (requests being answered finish on their own).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.join.await;
    }
}

struct State {
    admin: Admin,
    started: Instant,
}

async fn accept(listener: TcpListener, state: Arc<State>, mut stopped: oneshot::Receiver<()>) {
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            _ = upkeep.tick() => {
                if let Some(p) = &state.admin.prometheus {
                    p.run_upkeep();
                }
                continue;
            }
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                std::future::ready(Ok::<_, Infallible>(answer(&state, &req)))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin endpoint: connection failed");
            }
        });
    }
}

type Body = Full<Bytes>;

fn answer(state: &State, req: &Request<Incoming>) -> Response<Body> {
    let admin = &state.admin;
    if req.uri().path() == "/loglevel" {
        return loglevel(admin, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if admin.ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => match &admin.prometheus {
            Some(p) => {
                publish_servers(admin);
                publish_clients();
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    p.render(),
                )
            }
            None => text(StatusCode::NOT_FOUND, "no Prometheus recorder configured\n"),
        },
        "/status" => reply(StatusCode::OK, "application/json", status(state)),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz, /readyz, /status, /loglevel\n",
        ),
    }
}

/// `/loglevel`: read or switch the program's log filter.
fn loglevel(admin: &Admin, req: &Request<Incoming>) -> Response<Body> {
    let Some(lf) = &admin.log_filter else {
        return text(StatusCode::NOT_FOUND, "no log filter switch configured\n");
    };
    let m = req.method();
    if m == Method::GET || m == Method::HEAD {
        let current = lf.current.lock().clone().unwrap_or_default();
        return reply(StatusCode::OK, "text/plain; charset=utf-8", current + "\n");
    }
    if m != Method::PUT && m != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET, PUT or POST\n");
    }
    let filter = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("filter="))
            .map(percent_decode)
    });
    let filter = match filter {
        Some(Ok(f)) if !f.trim().is_empty() => f,
        Some(Err(e)) => return reply(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", e),
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "missing ?filter=DIRECTIVE (debug, info,weft_middleware=debug, ...)\n",
            )
        }
    };
    // Hold the lock across the switch: two concurrent changes land in
    // the order `GET` reports.
    let mut current = lf.current.lock();
    match (lf.set)(&filter) {
        Ok(()) => {
            tracing::info!(filter = filter.as_str(), "log filter changed");
            let body = format!("{filter}\n");
            *current = Some(filter);
            reply(StatusCode::OK, "text/plain; charset=utf-8", body)
        }
        Err(e) => reply(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            format!("bad filter {filter:?}: {e}\n"),
        ),
    }
}

/// Decode a query value: `%XX` escapes and `+` for a space.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in {s:?}\n"))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("filter is not UTF-8: {s:?}\n"))
}

/// The watched servers' connection counts, read as the scrape happens
/// (the accept loop keeps plain atomics; nothing is recorded per
/// connection).
fn publish_servers(admin: &Admin) {
    for s in &admin.servers {
        let addr = s.local_addr().to_string();
        metrics::gauge!("weft_server_connections_open", "addr" => addr.clone())
            .set(s.open() as f64);
        metrics::counter!("weft_server_connections_accepted_total", "addr" => addr.clone())
            .absolute(s.accepted() as u64);
        metrics::counter!("weft_server_connection_limit_reached_total", "addr" => addr)
            .absolute(s.limit_reached() as u64);
    }
}

/// The connection counts of the process's clients, per peer, read as the
/// scrape happens (`weft_core::client::peers`).
fn publish_clients() {
    for (peer, c) in weft_core::client::peers() {
        let peer = peer.to_string();
        if c.pool_hits + c.pool_misses > 0 || c.pooled_clients > 0 {
            metrics::counter!("weft_client_pool_hits_total", "peer" => peer.clone())
                .absolute(c.pool_hits);
            metrics::counter!("weft_client_pool_misses_total", "peer" => peer.clone())
                .absolute(c.pool_misses);
            metrics::gauge!("weft_client_pool_connections_open", "peer" => peer.clone())
                .set(c.pool_open as f64);
            metrics::gauge!("weft_client_pool_connections_idle", "peer" => peer.clone())
                .set(c.pool_idle as f64);
        }
        if c.mux_clients > 0 {
            metrics::gauge!("weft_client_mux_calls_in_flight", "peer" => peer)
                .set(c.mux_in_flight as f64);
        }
    }
}

fn status(state: &State) -> String {
    let admin = &state.admin;
    let mut methods = Vec::new();
    for table in &admin.tables {
        for e in table.entries() {
            methods.push(serde_json::json!({
                "side": e.side().as_str(),
                "service": e.service.as_str(),
                "method": e.method.as_str(),
                "in_flight": e.in_flight.load(Ordering::Relaxed),
                "calls": e.total.load(Ordering::Relaxed),
                "errors": e.errors.load(Ordering::Relaxed),
            }));
        }
    }
    let servers: Vec<_> = admin
        .servers
        .iter()
        .map(|s| {
            serde_json::json!({
                "address": s.local_addr().to_string(),
                "accepted": s.accepted(),
                "open": s.open(),
                "shutting_down": s.is_shutting_down(),
            })
        })
        .collect();
    let mut balancers = Vec::new();
    let mut limits = Vec::new();
    let mut breakers = Vec::new();
    for v in &admin.views {
        for l in v.limits() {
            let mut j = serde_json::json!({
                "kind": l.kind,
                "shed": l.shed,
            });
            if let Some(limit) = l.limit {
                j["limit"] = limit.into();
            }
            if let Some(n) = l.in_flight {
                j["in_flight"] = n.into();
            }
            if let Some((per_second, burst)) = l.rate {
                j["per_second"] = per_second.into();
                j["burst"] = burst.into();
            }
            limits.push(j);
        }
        for b in v.breakers() {
            breakers.push(serde_json::json!({
                "service": b.service.as_str(),
                "method": b.method.as_str(),
                "state": breaker_state(b.state),
            }));
        }
        for (service, eps) in v.balancers() {
            let instances: Vec<_> = eps
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "address": e.instance.address.to_string(),
                        "weight": e.instance.weight,
                        "in_flight": e.in_flight,
                        "latency_ms": e.latency.as_secs_f64() * 1e3,
                        "breaker": breaker_state(e.breaker),
                    })
                })
                .collect();
            balancers.push(serde_json::json!({
                "service": service.as_str(),
                "instances": instances,
            }));
        }
    }
    let mut out = serde_json::json!({
        "ready": admin.ready(),
        "balancers": balancers,
        "limits": limits,
        "method_breakers": breakers,
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "servers": servers,
        "methods": methods,
    })
    .to_string();
    let _ = writeln!(out);
    out
}

fn breaker_state(s: crate::breaker::BreakerState) -> &'static str {
    match s {
        crate::breaker::BreakerState::Closed => "closed",
        crate::breaker::BreakerState::HalfOpen => "half_open",
        crate::breaker::BreakerState::Open => "open",
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", body.to_owned())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}
