//! The `Bench` echo service as a user builds it: the server, handler trait
//! and typed client that Weft's codegen generates from `idl/bench.thrift`
//! (in `build.rs`), the server inside the default [`ServerStack`], the
//! client over the default [`ClientStack`]. This is what the load
//! generator's `weft-pooled` and `weft-mux` rows measure.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use weft::{
    core::{
        bytes::Bytes, client::Client as CoreClient, faststr::FastStr, Address, ClientBuilder,
        ConnectionMode, Context, Instance, Limits, ServerBuilder, ServerHandle, StaticDiscover,
        Status,
    },
    middleware::{ClientService, ClientStack, ObserveLayer, ServerStack, System},
    thrift::{Protocol, ThriftClientCodec, Transport},
};

#[allow(missing_docs, unreachable_pub, clippy::all)]
mod gen {
    include!(concat!(env!("OUT_DIR"), "/bench_weft.rs"));
}

pub use gen::bench_weft::weft_bench::{
    Bench, BenchClient, BenchRequest, BenchResponse, BenchServer,
};

/// The echo handler: returns what it got, counting calls.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    calls: Arc<AtomicU64>,
}

impl Echo {
    /// A handler counting into `calls`.
    pub fn with_counter(calls: Arc<AtomicU64>) -> Self {
        Echo { calls }
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Bench for Echo {
    async fn echo(&self, _cx: &mut Context, msg: FastStr) -> Result<FastStr, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(msg)
    }

    async fn echo_bin(&self, _cx: &mut Context, data: Bytes) -> Result<Bytes, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(data)
    }
}

/// Serve `handler` on `addr` (`127.0.0.1:0` picks a port, `unix:/path` a
/// Unix socket): the generated server inside the default [`ServerStack`],
/// with the default server builder.
pub async fn serve(addr: &str, handler: Echo) -> std::io::Result<ServerHandle> {
    serve_with(addr, handler, false).await
}

/// [`serve`], with the observe layer (metrics, a span per call, trace
/// propagation) on top of the stack when `observe` is set; see
/// [`install_observers`].
pub async fn serve_with(addr: &str, handler: Echo, observe: bool) -> std::io::Result<ServerHandle> {
    let builder = ServerBuilder::new();
    let limits = builder.limits_ref().clone();
    let addr: Address = addr.parse()?;
    if observe {
        install_observers();
    }
    let layer =
        observe.then(|| ObserveLayer::server(System::Thrift).sample_ratio(trace_sample_ratio()));
    let service = ServerStack::new()
        .observe(layer)
        .build(BenchServer::new(handler));
    builder
        .serve(&addr, move || BenchServer::<Echo>::codec(&limits), service)
        .await
}

/// The share of traces the observed impls sample: `$WEFT_BENCH_TRACE_SAMPLE`
/// (0 to 1), every trace when unset.
pub fn trace_sample_ratio() -> f64 {
    std::env::var("WEFT_BENCH_TRACE_SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

/// What a program observing its calls installs once: a Prometheus
/// recorder (the admin endpoint's buckets) as the global `metrics`
/// recorder, and a `tracing` registry as the global subscriber, so that
/// every span is really built and stored, as under an OpenTelemetry layer.
/// Idempotent: the second call in a process finds both installed.
pub fn install_observers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let recorder = weft::middleware::observe::admin::prometheus_builder().build_recorder();
        let handle = recorder.handle();
        // Nothing scrapes during a run: drain histogram samples as the
        // admin endpoint would, so they do not pile up.
        std::thread::spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        });
        let _ = metrics::set_global_recorder(recorder);
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// The connection service under the stack.
pub type Conn = CoreClient<ThriftClientCodec<BenchRequest, BenchResponse>>;

/// The generated client over the default [`ClientStack`] (retry, method
/// breaker, P2C balancer with instance breakers) over one Weft client per
/// instance, TTHeader + binary.
pub type Client = BenchClient<ClientService<Conn>>;

/// A client of the one server at `addr`. A pooled client keeps up to
/// `max(64, pool)` idle connections: one per concurrent caller, like Volo's
/// pool (10,240 by default), rather than Weft's default of 64. Must be
/// called inside a Tokio runtime (the balancer follows discovery in a task).
pub fn client(addr: &Address, mode: ConnectionMode, pool: usize) -> Result<Client, Status> {
    client_with(addr, mode, pool, false)
}

/// [`client`], with the observe layer on top of the stack when `observe`
/// is set; see [`install_observers`].
pub fn client_with(
    addr: &Address,
    mode: ConnectionMode,
    pool: usize,
    observe: bool,
) -> Result<Client, Status> {
    if observe {
        install_observers();
    }
    let discover = StaticDiscover::from_addresses([addr.clone()]);
    let layer =
        observe.then(|| ObserveLayer::client(System::Thrift).sample_ratio(trace_sample_ratio()));
    let stack =
        ClientStack::new()
            .observe(layer)
            .build(&discover, "Bench", move |inst: &Instance| {
                let limits = Limits::default();
                let codec = ThriftClientCodec::new(Transport::TTHeader, Protocol::Binary, &limits);
                ClientBuilder::new(inst.address.clone())
                    .mode(mode)
                    .max_idle(pool.max(weft::core::client::DEFAULT_MAX_IDLE))
                    .max_connections(pool.max(weft::core::client::DEFAULT_MAX_CONNECTIONS))
                    .build(codec)
            })?;
    Ok(BenchClient::from_service(stack))
}
