//! [`ObserveLayer`].

use std::sync::{atomic::AtomicU64, Arc};

use faststr::FastStr;
use tower::Layer;

use super::{
    table::{MethodTable, DEFAULT_MAX_METHODS},
    AccessLog, Observe, Propagator, Shared, Side, System,
};

/// Applies [`Observe`]: metrics and tracing on, the access log off.
///
/// Every service this layer wraps shares one method table, which the admin
/// endpoint's `/status` reads ([`ObserveLayer`] is cheap to clone).
#[derive(Clone)]
#[must_use]
pub struct ObserveLayer {
    side: Side,
    system: System,
    metrics: bool,
    tracing: bool,
    sample_below: u64,
    access: Option<AccessLog>,
    propagator: Option<Arc<dyn Propagator>>,
    service: FastStr,
    max_methods: usize,
    table: Arc<MethodTable>,
    views: Arc<super::views::Views>,
}

impl ObserveLayer {
    /// Observe the calls a server serves over `system`.
    pub fn server(system: System) -> Self {
        ObserveLayer::new(Side::Server, system)
    }

    /// Observe the calls a client makes over `system`.
    pub fn client(system: System) -> Self {
        ObserveLayer::new(Side::Client, system)
    }

    fn new(side: Side, system: System) -> Self {
        super::table::describe(side);
        ObserveLayer {
            side,
            system,
            metrics: true,
            tracing: true,
            sample_below: u64::MAX,
            access: None,
            propagator: None,
            service: FastStr::empty(),
            max_methods: DEFAULT_MAX_METHODS,
            table: Arc::new(MethodTable::new(
                side,
                FastStr::empty(),
                DEFAULT_MAX_METHODS,
            )),
            views: Arc::default(),
        }
    }

    /// Show `service`'s balancer (built by `ClientStack` with this layer)
    /// in the admin endpoint's `/status`.
    pub(crate) fn add_balancer(&self, service: &str, view: super::views::EndpointsView) {
        self.views.add_balancer(FastStr::new(service), view);
    }

    /// Show a limit layer of a stack built with this layer in `/status`.
    pub(crate) fn add_limit(&self, view: super::views::LimitView) {
        self.views.add_limit(view);
    }

    /// Show the method breakers of a stack built with this layer in
    /// `/status`.
    pub(crate) fn add_breakers(&self, view: super::views::BreakersView) {
        self.views.add_breakers(view);
    }

    /// What the stacks built with this layer registered for `/status`.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn views(&self) -> &Arc<super::views::Views> {
        &self.views
    }

    /// The `service` label (and `rpc.service`) of every call through this
    /// layer, in place of the service its context names (which plain Thrift
    /// peers leave empty; TTHeader and gRPC name the IDL service). Default
    /// empty: the context's.
    pub fn service(mut self, name: impl Into<FastStr>) -> Self {
        self.service = name.into();
        self.renew_table();
        self
    }

    /// Distinct service/method pairs with series of their own (about this
    /// many: hashing may fit up to twice as many); calls beyond count as
    /// method `_other`. Default [`DEFAULT_MAX_METHODS`].
    pub fn max_methods(mut self, n: usize) -> Self {
        self.max_methods = n;
        self.renew_table();
        self
    }

    /// Record metrics. Default on.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Make a span per call and propagate the trace. Default on.
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = on;
        self
    }

    /// The share of new traces that get spans, from 0 to 1, as
    /// OpenTelemetry's parent-based trace-id-ratio sampler decides: a trace
    /// this process starts is sampled when its id falls under the ratio; a
    /// call inside a trace follows its parent's `sampled` flag (bit 0 of
    /// the `traceparent` flags), so a trace is recorded in every process or
    /// in none. A call that is not sampled makes no span but still
    /// propagates its `traceparent` (flags `00`) and counts in the metrics.
    /// Default 1: every call. Ignored under a [`Propagator`], whose tracer
    /// samples.
    pub fn sample_ratio(mut self, ratio: f64) -> Self {
        self.sample_below = if ratio >= 1.0 {
            u64::MAX
        } else if ratio > 0.0 {
            (ratio * u64::MAX as f64) as u64
        } else {
            0
        };
        self
    }

    /// Log calls as [`AccessLog`] samples them; `None` turns the log off.
    /// Default off.
    pub fn access_log(mut self, log: Option<AccessLog>) -> Self {
        self.access = log;
        self
    }

    /// Hand trace propagation to `propagator` (OpenTelemetry, say) instead
    /// of Weft's own W3C ids. Default none.
    pub fn propagator(mut self, propagator: Arc<dyn Propagator>) -> Self {
        self.propagator = Some(propagator);
        self
    }

    /// Which end of calls this layer observes.
    pub fn side(&self) -> Side {
        self.side
    }

    // Read by the admin endpoint's /status.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn table(&self) -> &Arc<MethodTable> {
        &self.table
    }

    fn renew_table(&mut self) {
        self.table = Arc::new(MethodTable::new(
            self.side,
            self.service.clone(),
            self.max_methods,
        ));
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            shared: Arc::new(Shared {
                side: self.side,
                system: self.system,
                metrics: self.metrics,
                tracing: self.tracing,
                sample_below: self.sample_below,
                access: self.access,
                access_seen: AtomicU64::new(0),
                propagator: self.propagator.clone(),
                table: self.table.clone(),
                sizes: self.table.clone(),
            }),
        }
    }
}

impl std::fmt::Debug for ObserveLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveLayer")
            .field("side", &self.side)
            .field("system", &self.system)
            .field("metrics", &self.metrics)
            .field("tracing", &self.tracing)
            .field("sample_below", &self.sample_below)
            .field("access", &self.access)
            .field("service", &self.service)
            .field("propagator", &self.propagator.is_some())
            .finish()
    }
}
