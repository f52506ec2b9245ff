//! Observability at the top of a client or server stack: Prometheus-style
//! metrics through the `metrics` facade, a `tracing` span per call with
//! OpenTelemetry's RPC field names and W3C trace propagation, and a
//! sampled access log.
//!
//! [`Observe`] is one layer doing all three, so a call reads the clock and
//! finds its method's handles once. Metrics go to whatever recorder the
//! program installed (`metrics::set_global_recorder`, or the admin
//! endpoint's Prometheus recorder); Weft keeps no registry of its own. The
//! handles of a service and method are registered on its first call and
//! found again lock-free afterwards (`table`), so a call allocates nothing
//! for its metrics. Install the recorder before the first call: handles
//! registered before it discard what they record.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `weft_server_calls_total` | counter | `service`, `method`, `code` | calls answered, by status code |
//! | `weft_server_call_duration_seconds` | histogram | `service`, `method` | time from the call reaching the layer to its answer |
//! | `weft_server_calls_in_flight` | gauge | `service`, `method` | calls being served |
//! | `weft_client_calls_total` | counter | `service`, `method`, `code` | calls made, by status code (retries included in one call) |
//! | `weft_client_call_duration_seconds` | histogram | `service`, `method` | time to the answer, retries included |
//! | `weft_client_calls_in_flight` | gauge | `service`, `method` | calls waiting for an answer |
//! | `weft_server_request_bytes` | histogram | `service`, `method` | request frames read, by size on the wire |
//! | `weft_server_response_bytes` | histogram | `service`, `method` | answer frames written, by size on the wire |
//! | `weft_client_request_bytes` | histogram | `service`, `method` | request frames written (one per attempt) |
//! | `weft_client_response_bytes` | histogram | `service`, `method` | response frames read (one per attempt answered) |
//!
//! Sizes are the frames as the transport wrote or delimited them, reported
//! through [`weft_core::wire`]: the client layer puts a sink in the
//! request's context, the server layer offers one to the connection that
//! calls it.
//!
//! `code` is the gRPC canonical name (`OK`, `DEADLINE_EXCEEDED`,
//! `RESOURCE_EXHAUSTED`, …). A Thrift method's declared exception is an
//! answer like any other, so it counts as `OK`. A call whose future is
//! dropped before it ends counts as `CANCELLED`. Past
//! [`ObserveLayer::max_methods`] distinct methods, calls count under the
//! method `_other`. The governance layers' own metrics (retries, sheds,
//! breaker trips, limits) are listed in the README.
//!
//! Spans are named `rpc.server` and `rpc.client` and carry `otel.name`
//! (`service/method`), `otel.kind`, `rpc.system`, `rpc.service`,
//! `rpc.method`, `server.address`, `server.port` (client),
//! `network.peer.address`, `network.peer.port`, `rpc.response.status_code`
//! (the code's name), `rpc.grpc.status_code` (gRPC), `otel.status_code`
//! and `error.type` on failure, and Weft's W3C ids (`trace_id`, `span_id`,
//! `parent_span_id`; see [`TraceContext`]) unless a [`Propagator`] takes
//! over.

mod access;
mod future;
pub(crate) mod governance;

mod layer;
pub(crate) mod table;
mod trace;
pub(crate) mod views;

#[cfg(feature = "admin")]
pub mod admin;

pub use access::AccessLog;
pub use future::ResponseFuture;
pub use layer::ObserveLayer;
pub use table::{DEFAULT_MAX_METHODS, OTHER_METHOD};
pub use trace::{Propagator, TraceContext, TRACEPARENT, TRACESTATE};

use std::{
    sync::{atomic::AtomicU64, Arc, OnceLock},
    task::{Context as TaskContext, Poll},
};

use tower::Service;
use tracing::field::{display, Empty, Field};
use weft_core::{wire::SizeSink, Address, Request, Response, Status};

use access::Who;
use table::MethodTable;
use trace::{PollScope, SpanId, TraceId};

/// Which end of calls a layer observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Calls this process makes.
    Client,
    /// Calls this process serves.
    Server,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// The RPC system, as OpenTelemetry's `rpc.system` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum System {
    /// Apache Thrift (every transport and protocol).
    Thrift,
    /// gRPC.
    Grpc,
}

impl System {
    /// The `rpc.system` value.
    pub fn as_str(self) -> &'static str {
        match self {
            System::Thrift => "thrift",
            System::Grpc => "grpc",
        }
    }
}

/// What every clone of one [`Observe`] shares.
pub(crate) struct Shared {
    pub(crate) side: Side,
    pub(crate) system: System,
    pub(crate) metrics: bool,
    pub(crate) tracing: bool,
    // New traces whose id's low 64 bits fall below this are sampled
    // (`u64::MAX`: every one).
    pub(crate) sample_below: u64,
    pub(crate) access: Option<AccessLog>,
    pub(crate) access_seen: AtomicU64,
    pub(crate) propagator: Option<Arc<dyn Propagator>>,
    pub(crate) table: Arc<MethodTable>,
    /// `table` again, as the transports' size sink (coerced once here, so a
    /// call clones an `Arc` and allocates nothing).
    pub(crate) sizes: Arc<dyn weft_core::wire::RecordSizes>,
}

/// Records metrics, a span and an access-log line for each call through
/// it; see the [module docs](self). Made by [`ObserveLayer`].
pub struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for Observe<S> {
    fn clone(&self) -> Self {
        Observe {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observe")
            .field("inner", &self.inner)
            .field("side", &self.shared.side)
            .field("system", &self.shared.system)
            .finish_non_exhaustive()
    }
}

impl<S> Observe<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, T, R> Service<Request<T>> for Observe<S>
where
    S: Service<Request<T>, Response = Response<R>, Error = Status>,
{
    type Response = Response<R>;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<T>) -> Self::Future {
        let sh = &self.shared;
        let who = sh.access.map(|_| {
            Box::new(Who {
                service: sh.table.service(&req.cx.service).clone(),
                method: req.cx.method.clone(),
                peer: req.cx.peer.clone(),
            })
        });
        let entry = if sh.metrics {
            let (i, e) = sh.table.entry(&req.cx.service, &req.cx.method);
            e.start();
            let sink = SizeSink::new(sh.sizes.clone(), i);
            match sh.side {
                // The client connection reports what it writes and reads.
                Side::Client => req.cx.sizes = Some(sink),
                // The server connection calling us takes it as we return.
                Side::Server => weft_core::wire::offer(sink),
            }
            Some(i)
        } else {
            None
        };
        if !sh.tracing {
            return ResponseFuture::new(self.inner.call(req), None, None, sh.clone(), entry, who);
        }
        if let Some(p) = &sh.propagator {
            let service = sh.table.service(&req.cx.service);
            let span = new_span(sh, service, &req.cx.method, req.cx.peer.as_ref(), None);
            match sh.side {
                Side::Server => {
                    // The propagator reads the strings, as the caller sent them.
                    req.cx.upstream_trace_into_metainfo();
                    p.extract(&req.cx.metainfo.upstream, &span)
                }
                Side::Client => p.inject(&span, &mut req.cx.metainfo.transient),
            }
            // Inside the span: layers below may make child spans or events
            // (a retry's attempts, a shed) before the first poll.
            let fut = {
                let _in = span.enter();
                self.inner.call(req)
            };
            return ResponseFuture::new(fut, None, Some(span), sh.clone(), entry, who);
        }
        let parent = match sh.side {
            Side::Server => TraceContext::received(&req.cx),
            Side::Client => TraceContext::current(),
        };
        let tc = match &parent {
            // Parent-based: the trace is recorded everywhere or nowhere.
            Some(p) => p.child(),
            None => {
                let mut tc = TraceContext::root();
                let sampled = sh.sample_below == u64::MAX || (tc.trace_id as u64) < sh.sample_below;
                tc.flags = u8::from(sampled);
                tc
            }
        };
        if sh.side == Side::Client {
            tc.inject_into(&mut req.cx);
        }
        // The trace context is current while the inner call() runs and
        // while the call's future is polled.
        if tc.flags & 1 == 0 {
            // Not sampled: no span, but the context stays current so the
            // calls this one makes carry the trace on, unsampled.
            let mut tc = Some(tc);
            let fut = {
                let _cx = PollScope::enter(&mut tc);
                self.inner.call(req)
            };
            return ResponseFuture::new(fut, tc, None, sh.clone(), entry, who);
        }
        let service = sh.table.service(&req.cx.service);
        let ids = Ids {
            trace: tc.trace_id,
            span: tc.span_id,
            parent: parent.map(|p| p.span_id),
        };
        let span = new_span(sh, service, &req.cx.method, req.cx.peer.as_ref(), Some(ids));
        // Entered for the inner call() too: layers below may make child
        // spans or events there (a retry's attempts, a shed).
        let mut tc = Some(tc);
        let fut = {
            let _in = span.enter();
            let _cx = PollScope::enter(&mut tc);
            self.inner.call(req)
        };
        ResponseFuture::new(fut, tc, Some(span), sh.clone(), entry, who)
    }
}

/// Weft's W3C ids of a call's span.
struct Ids {
    trace: u128,
    span: u64,
    parent: Option<u64>,
}

/// The call's span, with everything known before it starts given at once:
/// a field given a value when the span is made costs nothing more, where
/// each `record` afterwards is a search of the field names and a call into
/// the subscriber.
fn new_span(
    sh: &Shared,
    service: &str,
    method: &str,
    peer: Option<&Address>,
    ids: Option<Ids>,
) -> tracing::Span {
    let (host, port) = match peer {
        Some(p) => (Some(display(Host(p))), port(p)),
        None => (None, None),
    };
    let trace_id = ids.as_ref().map(|i| display(TraceId(i.trace)));
    let span_id = ids.as_ref().map(|i| display(SpanId(i.span)));
    let parent_span_id = ids.and_then(|i| i.parent).map(|p| display(SpanId(p)));
    match sh.side {
        Side::Server => tracing::info_span!(
            "rpc.server",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = sh.system.as_str(),
            rpc.service = service,
            rpc.method = method,
            network.peer.address = host,
            network.peer.port = port,
            rpc.response.status_code = Empty,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            error.type = Empty,
            trace_id,
            span_id,
            parent_span_id,
        ),
        Side::Client => tracing::info_span!(
            "rpc.client",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = sh.system.as_str(),
            rpc.service = service,
            rpc.method = method,
            server.address = host,
            server.port = port,
            network.peer.address = host,
            network.peer.port = port,
            rpc.response.status_code = Empty,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            error.type = Empty,
            trace_id,
            span_id,
            parent_span_id,
        ),
    }
}

/// Where the peer is, as `network.peer.address` and `server.address` say:
/// the IP of a socket address, the path of a Unix socket, or the name the
/// caller asked for (what OpenTelemetry wants in `server.address`; the
/// resolved IP is not known up here).
#[derive(Clone, Copy)]
struct Host<'a>(&'a Address);

impl std::fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Address::Tcp(a) => std::fmt::Display::fmt(&a.ip(), f),
            Address::Unix(p) => std::fmt::Display::fmt(&p.display(), f),
            Address::Host(host, _) => f.write_str(host),
        }
    }
}

fn port(a: &Address) -> Option<u16> {
    match a {
        Address::Tcp(a) => Some(a.port()),
        Address::Unix(_) => None,
        Address::Host(_, port) => Some(*port),
    }
}

/// The fields recorded as a call ends, found once per span callsite
/// rather than searched by name on every call.
pub(crate) struct EndFields {
    server_address: Option<Field>,
    server_port: Option<Field>,
    peer_address: Option<Field>,
    peer_port: Option<Field>,
    status: Option<Field>,
    grpc_status: Option<Field>,
    otel_status: Option<Field>,
    error_type: Option<Field>,
}

impl EndFields {
    /// The fields of `span`'s callsite (one per side), cached.
    pub(crate) fn of(side: Side, span: &tracing::Span) -> Option<&'static EndFields> {
        static SERVER: OnceLock<EndFields> = OnceLock::new();
        static CLIENT: OnceLock<EndFields> = OnceLock::new();
        let meta = span.metadata()?;
        let cell = match side {
            Side::Server => &SERVER,
            Side::Client => &CLIENT,
        };
        let f = cell.get_or_init(|| {
            let fields = meta.fields();
            EndFields {
                server_address: fields.field("server.address"),
                server_port: fields.field("server.port"),
                peer_address: fields.field("network.peer.address"),
                peer_port: fields.field("network.peer.port"),
                status: fields.field("rpc.response.status_code"),
                grpc_status: fields.field("rpc.grpc.status_code"),
                otel_status: fields.field("otel.status_code"),
                error_type: fields.field("error.type"),
            }
        });
        Some(f)
    }
}

/// Record where the peer is: `network.peer.*`, and `server.*` on a client.
fn record_peer(span: &tracing::Span, f: &EndFields, side: Side, peer: &Address) {
    let host = Host(peer);
    if let Some(field) = &f.peer_address {
        span.record(field, display(host));
    }
    let port = port(peer);
    if let (Some(field), Some(port)) = (&f.peer_port, port) {
        span.record(field, port);
    }
    if side == Side::Client {
        if let Some(field) = &f.server_address {
            span.record(field, display(host));
        }
        if let (Some(field), Some(port)) = (&f.server_port, port) {
            span.record(field, port);
        }
    }
}

#[cfg(test)]
mod tests;
