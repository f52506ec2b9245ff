//! Client options, the client handle, and calls: blocking, with a
//! completion callback, or into a pollable queue.

use std::{
    ffi::{c_char, c_void},
    future::Future,
    sync::Arc,
    thread::ThreadId,
    time::{Duration, Instant},
};

use bytes::Bytes;
use faststr::FastStr;
use parking_lot::Mutex;
use tower::ServiceExt;
use weft_core::{
    Address, Client, ClientBuilder, ConnectionMode, Context, Discover, Instance, Instances, Limits,
    Request, Response, StaticDiscover, Status,
};
use weft_discovery::{EtcdConfig, EtcdDiscover};
use weft_middleware::{
    balance::{BalanceConfig, Strategy},
    ClientService, ClientStack, PerMethod, RetryBudget, RetryLayer, RetryPolicy,
};
use weft_protobuf::GrpcClient;
use weft_thrift::{Protocol, ThriftClientCodec, Transport};

use crate::{
    buf::{weft_bytes, UserData},
    ctx::{weft_ctx, Cancel, Ctx},
    error::{
        bytes_arg, check_out, code_of, guard, quiet, str_arg, weft_code, weft_error, write_out,
    },
    etcd::{EtcdTarget, ETCD_READY_TIMEOUT},
    handle::handle_type,
    queue::{weft_queue, Done},
    raw::{validate_struct, Args, Outcome},
    runtime::{weft_runtime, Runtime},
};

/// Transport: Kitex/Volo TTHeader (the default; multiplexed).
pub const WEFT_TRANSPORT_TTHEADER: i32 = 0;
/// Transport: framed Thrift (`TFramedTransport`).
pub const WEFT_TRANSPORT_FRAMED: i32 = 1;
/// Transport: buffered (unframed) Thrift.
pub const WEFT_TRANSPORT_BUFFERED: i32 = 2;
/// Transport: Apache THeader.
pub const WEFT_TRANSPORT_THEADER: i32 = 3;
/// Transport: gRPC over HTTP/2 (unary calls; multiplexed), with
/// `WEFT_PROTOCOL_PROTOBUF`: a call's method is the path
/// `/package.Service/Method`, its args the encoded request message and its
/// reply the encoded response message.
pub const WEFT_TRANSPORT_GRPC: i32 = 4;

/// Protocol: `TBinaryProtocol` (the default).
pub const WEFT_PROTOCOL_BINARY: i32 = 0;
/// Protocol: `TCompactProtocol`.
pub const WEFT_PROTOCOL_COMPACT: i32 = 1;
/// Protocol: protobuf, with `WEFT_TRANSPORT_GRPC` only.
pub const WEFT_PROTOCOL_PROTOBUF: i32 = 2;

/// Load balancing: power of two choices on peak-EWMA latency (the default).
pub const WEFT_LB_P2C: i32 = 0;
/// Load balancing: round robin.
pub const WEFT_LB_ROUND_ROBIN: i32 = 1;
/// Load balancing: weighted random.
pub const WEFT_LB_WEIGHTED_RANDOM: i32 = 2;
/// Load balancing: consistent hashing on the metainfo value named by
/// `weft_client_options_set_hash_key` (persistent, else transient).
pub const WEFT_LB_CONSISTENT_HASH: i32 = 3;

/// Connections: many calls in flight on each (the default on TTHeader and
/// THeader).
pub const WEFT_CONN_MULTIPLEXED: i32 = 0;
/// Connections: one call at a time on each, idle ones pooled (the default
/// on framed and buffered, which Apache servers answer in order).
pub const WEFT_CONN_POOLED: i32 = 1;

/// The timeout of a call when neither the options nor its context set one:
/// a call must end even when the peer never answers.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

// ===== options =====

#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    addresses: Vec<Address>,
    service: String,
    transport: Transport,
    protocol: Protocol,
    grpc: bool,
    mode: Option<ConnectionMode>,
    timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    attempts: u32,
    budget_ratio: f64,
    idempotent_all: bool,
    idempotent: Vec<String>,
    lb: i32,
    hash_key: Option<String>,
    breakers: bool,
    etcd: Option<EtcdTarget>,
    caller_io: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            addresses: Vec::new(),
            service: String::new(),
            transport: Transport::TTHeader,
            protocol: Protocol::Binary,
            grpc: false,
            mode: None,
            timeout: Some(DEFAULT_CALL_TIMEOUT),
            attempt_timeout: None,
            attempts: weft_middleware::retry::DEFAULT_MAX_ATTEMPTS,
            budget_ratio: weft_middleware::retry::DEFAULT_RATIO,
            idempotent_all: false,
            idempotent: Vec::new(),
            lb: WEFT_LB_P2C,
            hash_key: None,
            breakers: true,
            etcd: None,
            caller_io: true,
        }
    }
}

/// Options for `weft_client_new`. Thread-safe (a lock inside); used
/// once or many times, and freed with `weft_client_options_free`.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_client_options {
    _opaque: [u8; 0],
}

handle_type!(
    weft_client_options,
    Mutex<ClientOptions>,
    CLIENT_OPTIONS,
    0x20,
    "weft_client_options"
);

fn edit_options(
    opts: *mut weft_client_options,
    err: *mut *mut weft_error,
    f: impl FnOnce(&mut ClientOptions) -> Result<(), Status>,
) -> weft_code {
    guard(err, || {
        let o = weft_client_options::get(opts)?;
        let mut o = o.lock();
        f(&mut o)
    })
}

fn duration_ms(ms: i64, what: &str) -> Result<Option<Duration>, Status> {
    match ms {
        0 => Ok(None),
        ms if ms > 0 => Ok(Some(Duration::from_millis(ms as u64))),
        ms => Err(Status::invalid_argument(format!("{what} {ms} is negative"))),
    }
}

/// Create client options with the defaults: TTHeader, binary, multiplexed,
/// a 30 s timeout, 3 attempts within a 10 % retry budget (only what is safe
/// to retry: see `weft_client_options_set_idempotent`), power-of-two-choices
/// balancing, circuit breakers on. Free with `weft_client_options_free`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_new(
    out: *mut *mut weft_client_options,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        write_out(
            out,
            "out",
            weft_client_options::register(Arc::new(Mutex::new(ClientOptions::default()))),
        )
    })
}

/// Free client options. NULL, freed and invalid handles are ignored.
/// Clients made from them are not affected. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_free(opts: *mut weft_client_options) {
    quiet((), || {
        let _ = weft_client_options::take(opts);
    })
}

/// Add a server address: `"host:port"` (an IP literal) for TCP, or
/// `"unix:/path"` for a Unix socket. Calls are balanced over all added
/// addresses. A malformed address: `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_add_address(
    opts: *mut weft_client_options,
    address: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        let a = str_arg(address, "address")?;
        let addr = a
            .parse::<Address>()
            .map_err(|e| Status::invalid_argument(format!("address {a:?}: {e}")))?;
        o.addresses.push(addr);
        Ok(())
    })
}

/// Find the servers to call in etcd instead of at static addresses:
/// `endpoints` is one or more etcd URLs, comma-separated
/// (`"http://127.0.0.1:2379,http://10.0.0.2:2379"`), and `service` the name
/// servers register under (`/weft/services/<service>/<address>`, Weft's
/// layout, as `weft_server_options_set_etcd` and Weft's `EtcdRegistry`
/// write it). The client follows the set as servers come and go, without
/// dropping calls in flight. `weft_client_new` waits up to 5 s for the
/// first read (`WEFT_UNAVAILABLE` if etcd does not answer by then).
/// Cannot be combined with `weft_client_options_add_address`. Empty or
/// non-URL endpoints, an empty service: `WEFT_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_etcd(
    opts: *mut weft_client_options,
    endpoints: *const c_char,
    service: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        let endpoints = str_arg(endpoints, "endpoints")?;
        let service = str_arg(service, "service")?;
        o.etcd = Some(EtcdTarget::parse(endpoints, service)?);
        Ok(())
    })
}

/// Name the service called (TTHeader's to-service and the IDL service name
/// peers route by). Default empty. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_service(
    opts: *mut weft_client_options,
    service: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.service = str_arg(service, "service")?.to_owned();
        Ok(())
    })
}

/// Choose the transport (`WEFT_TRANSPORT_*`) and protocol
/// (`WEFT_PROTOCOL_*`); args and replies are encoded in that protocol.
/// `WEFT_TRANSPORT_GRPC` goes with `WEFT_PROTOCOL_PROTOBUF` and only with
/// it. Unknown values or mismatched pairs: `WEFT_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_codec(
    opts: *mut weft_client_options,
    transport: i32,
    protocol: i32,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        match (
            transport == WEFT_TRANSPORT_GRPC,
            protocol == WEFT_PROTOCOL_PROTOBUF,
        ) {
            (true, true) => {
                o.grpc = true;
                return Ok(());
            }
            (false, false) => o.grpc = false,
            _ => {
                return Err(Status::invalid_argument(
                    "gRPC (WEFT_TRANSPORT_GRPC) goes with protobuf (WEFT_PROTOCOL_PROTOBUF) \
                     and protobuf only with gRPC",
                ))
            }
        }
        o.transport = match transport {
            WEFT_TRANSPORT_TTHEADER => Transport::TTHeader,
            WEFT_TRANSPORT_FRAMED => Transport::Framed,
            WEFT_TRANSPORT_BUFFERED => Transport::Buffered,
            WEFT_TRANSPORT_THEADER => Transport::THeader,
            t => return Err(Status::invalid_argument(format!("unknown transport {t}"))),
        };
        o.protocol = protocol_of(protocol)?;
        Ok(())
    })
}

pub(crate) fn protocol_of(p: i32) -> Result<Protocol, Status> {
    match p {
        WEFT_PROTOCOL_BINARY => Ok(Protocol::Binary),
        WEFT_PROTOCOL_COMPACT => Ok(Protocol::Compact),
        p => Err(Status::invalid_argument(format!("unknown protocol {p}"))),
    }
}

pub(crate) fn protocol_id(p: Protocol) -> i32 {
    match p {
        Protocol::Binary => WEFT_PROTOCOL_BINARY,
        Protocol::Compact => WEFT_PROTOCOL_COMPACT,
    }
}

/// Choose the connection mode (`WEFT_CONN_*`). Unset: multiplexed for
/// TTHeader and THeader, pooled for the others; and pooled for the
/// connections a thread's own blocking calls use (see `weft_client_call`),
/// which carry one call at a time. Unknown values: `WEFT_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_connection_mode(
    opts: *mut weft_client_options,
    mode: i32,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.mode = Some(match mode {
            WEFT_CONN_MULTIPLEXED => ConnectionMode::Multiplexed,
            WEFT_CONN_POOLED => ConnectionMode::Pooled,
            m => {
                return Err(Status::invalid_argument(format!(
                    "unknown connection mode {m}"
                )))
            }
        });
        Ok(())
    })
}

/// The timeout of each call, retries included, when its context sets none:
/// `timeout_ms` > 0, or 0 for none. Default 30 s. Negative:
/// `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_timeout_ms(
    opts: *mut weft_client_options,
    timeout_ms: i64,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.timeout = duration_ms(timeout_ms, "timeout_ms")?;
        Ok(())
    })
}

/// The timeout of each attempt (an attempt that times out may be retried
/// on another instance), or 0 for none (the default). Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_attempt_timeout_ms(
    opts: *mut weft_client_options,
    timeout_ms: i64,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.attempt_timeout = duration_ms(timeout_ms, "timeout_ms")?;
        Ok(())
    })
}

/// Retries: at most `max_attempts` attempts per call (1 turns retries off;
/// default 3), and at most `budget_ratio` retries per call on average
/// (0.1 = 10 %, the default; between 0 and 100). Only failures that are safe
/// to retry are retried: not sent, refused by the server, or any failure of
/// an idempotent method. Out of range: `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_retries(
    opts: *mut weft_client_options,
    max_attempts: u32,
    budget_ratio: f64,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        if !(1..=16).contains(&max_attempts) {
            return Err(Status::invalid_argument(format!(
                "max_attempts {max_attempts} is not between 1 and 16"
            )));
        }
        if !(budget_ratio.is_finite() && (0.0..=100.0).contains(&budget_ratio)) {
            return Err(Status::invalid_argument(format!(
                "budget_ratio {budget_ratio} is not between 0 and 100"
            )));
        }
        o.attempts = max_attempts;
        o.budget_ratio = budget_ratio;
        Ok(())
    })
}

/// Mark `method` idempotent (its calls may be retried even when they may
/// have reached the server), or every method when `method` is NULL.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_idempotent(
    opts: *mut weft_client_options,
    method: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        if method.is_null() {
            o.idempotent_all = true;
        } else {
            o.idempotent.push(str_arg(method, "method")?.to_owned());
        }
        Ok(())
    })
}

/// Choose the load-balancing strategy (`WEFT_LB_*`). Unknown values:
/// `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_load_balance(
    opts: *mut weft_client_options,
    strategy: i32,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        if !(WEFT_LB_P2C..=WEFT_LB_CONSISTENT_HASH).contains(&strategy) {
            return Err(Status::invalid_argument(format!(
                "unknown strategy {strategy}"
            )));
        }
        o.lb = strategy;
        Ok(())
    })
}

/// The metainfo key whose value consistent hashing hashes (the persistent
/// value, else the transient one); calls without it are spread at random.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_hash_key(
    opts: *mut weft_client_options,
    key: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.hash_key = Some(str_arg(key, "key")?.to_owned());
        Ok(())
    })
}

/// Circuit breakers per method and per instance: on (the default) or off.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_breakers(
    opts: *mut weft_client_options,
    enabled: bool,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.breakers = enabled;
        Ok(())
    })
}

/// Whether blocking calls (`weft_client_call`) do their I/O on the calling
/// thread (`enabled`, the default): each calling thread then has its own
/// connections, balancer, breakers and retry budget for its blocking calls
/// (see `weft_client_call`), and a call costs no hop to a runtime thread
/// and back. Off: blocking calls share the client's stack with the other
/// call forms and wait for the runtime's threads to do their I/O. Etcd
/// clients always share. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_options_set_caller_io(
    opts: *mut weft_client_options,
    enabled: bool,
    err: *mut *mut weft_error,
) -> weft_code {
    edit_options(opts, err, |o| {
        o.caller_io = enabled;
        Ok(())
    })
}

// ===== client =====

type Conn = Client<ThriftClientCodec<Args, Outcome>>;

/// The middleware stack over a client's connections: Thrift or gRPC.
enum Stack {
    Thrift(ClientService<Conn>),
    Grpc(ClientService<GrpcClient>),
}

/// The most threads that get a stack of their own for blocking calls
/// (each with its connections); blocking calls from further threads go
/// through the shared runtime.
pub const MAX_BLOCKING_THREADS: usize = 16;

pub(crate) struct ClientInner {
    rt: Arc<Runtime>,
    service: FastStr,
    protocol: Protocol,
    stack: Stack,
    /// The options, to build the stacks of blocking callers' threads;
    /// `None` when those use the shared stack (etcd: its watch must be
    /// followed between calls too).
    options: Option<ClientOptions>,
    /// Per calling thread, the stack its blocking calls use.
    blocking: Mutex<Vec<(ThreadId, Arc<Local>)>>,
    /// The etcd discovery the balancer follows, and a subscription made
    /// before the balancer's: kept for as long as the client.
    _etcd: Option<(EtcdDiscover, tokio::sync::watch::Receiver<Instances>)>,
}

/// The stack of one thread's blocking calls, on a current-thread runtime
/// that the calling thread itself drives while it waits: the request is
/// written, the socket polled and the reply read on that thread, with no
/// hop to a worker and back (Apache Thrift's blocking socket makes none
/// either). Its connections and tasks are driven only during that
/// thread's calls.
struct Local {
    // Dropped before the runtime its connections belong to.
    stack: Stack,
    rt: Option<tokio::runtime::Runtime>,
    /// When this thread's last call on the stack ended: its driver was
    /// polled and the connections' tasks ran just before.
    last_end: Mutex<Option<Instant>>,
}

/// A blocking call that starts this soon after the same thread's previous
/// one ended skips the extra poll of its sockets (see [`Local::block_on`]).
const RECENTLY_POLLED: Duration = Duration::from_micros(200);

impl Local {
    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let rt = self.rt.as_ref().expect("present until dropped");
        let last_end = *self.last_end.lock();
        let recent = last_end.is_some_and(|t| t.elapsed() < RECENTLY_POLLED);
        let out = rt.block_on(async {
            // The connections' tasks ran last during this thread's previous
            // call: poll the socket once and let them run first, so that a
            // connection the server closed meanwhile is seen closed before
            // the call picks it (each yield polls the driver, then runs
            // what became ready). Calls back to back skip it: the previous
            // call's last poll of the driver was at most RECENTLY_POLLED
            // ago, and these two cost some 4 us of a call's CPU (four
            // syscalls and two scheduler turns). A close that arrived in
            // that window goes unseen, as one arriving just after the
            // yields always could: the call fails as on a connection lost
            // mid-call (retried when the retry policy allows).
            if !recent {
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
            }
            fut.await
        });
        *self.last_end.lock() = Some(Instant::now());
        out
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // The client may go on one of the shared runtime's threads,
            // where a runtime cannot be dropped in place.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                drop(rt);
            }
        }
    }
}

impl ClientInner {
    /// The stack for blocking calls from this thread: its own, made on
    /// its first call, or the shared one.
    fn local(&self) -> Result<Option<Arc<Local>>, Status> {
        let Some(o) = &self.options else {
            return Ok(None);
        };
        let me = std::thread::current().id();
        let mut all = self.blocking.lock();
        if let Some((_, l)) = all.iter().find(|(t, _)| *t == me) {
            return Ok(Some(l.clone()));
        }
        if all.len() >= MAX_BLOCKING_THREADS {
            return Ok(None);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Status::internal(format!("starting a blocking caller's runtime: {e}")))?;
        let discover = StaticDiscover::from_addresses(o.addresses.iter().cloned());
        let stack = build_stack(rt.handle(), o, &discover, &o.service, true)?;
        let local = Arc::new(Local {
            stack,
            rt: Some(rt),
            last_end: Mutex::new(None),
        });
        all.push((me, local.clone()));
        Ok(Some(local))
    }
}

impl std::fmt::Debug for ClientInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInner")
            .field("service", &self.service)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// A client of one service: connections, balancing, retries, breakers
/// and timeouts. Thread-safe: call it from any number of threads.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_client {
    _opaque: [u8; 0],
}

handle_type!(weft_client, ClientInner, CLIENTS, 0x21, "weft_client");

/// FNV-1a, a specified hash, so that a key lands on the same instance in
/// every process.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn build_client(rt: Arc<Runtime>, o: &ClientOptions) -> Result<ClientInner, Status> {
    match (&o.etcd, o.addresses.is_empty()) {
        (None, true) => {
            return Err(Status::invalid_argument(
                "the options name no address and no etcd",
            ))
        }
        (Some(_), false) => {
            return Err(Status::invalid_argument(
                "the options name both addresses and etcd: choose one",
            ))
        }
        _ => {}
    }
    let static_discover;
    let etcd = match &o.etcd {
        None => None,
        Some(t) => Some(rt.block_on(async {
            let d = EtcdDiscover::connect(&t.endpoints, EtcdConfig::default()).await?;
            let rx = d.subscribe_ready(&t.service, ETCD_READY_TIMEOUT).await?;
            Ok::<_, Status>((d, rx))
        })??),
    };
    let (discover, discovered): (&dyn Discover, &str) = match (&etcd, &o.etcd) {
        (Some((d, _)), Some(t)) => (d, &t.service),
        _ => {
            static_discover = StaticDiscover::from_addresses(o.addresses.iter().cloned());
            (&static_discover, &o.service)
        }
    };
    let service = FastStr::new(&o.service);
    let stack = build_stack(rt.handle(), o, discover, discovered, false)?;
    Ok(ClientInner {
        rt,
        service,
        protocol: o.protocol,
        stack,
        options: (etcd.is_none() && o.caller_io).then(|| o.clone()),
        blocking: Mutex::default(),
        _etcd: etcd,
    })
}

/// The middleware stack over the connections to what `discover` finds of
/// `discovered`, its tasks on `rt`.
fn build_stack(
    rt: &tokio::runtime::Handle,
    o: &ClientOptions,
    discover: &dyn Discover,
    discovered: &str,
    sequential: bool,
) -> Result<Stack, Status> {
    // A blocking caller's own stack (`sequential`) has one call at a time:
    // multiplexing would buy it nothing and cost it a writer and a reader
    // task per call, so unless asked for it uses a pooled connection, read
    // and written by the call itself.
    let mode = o.mode.unwrap_or(match o.transport {
        _ if sequential => ConnectionMode::Pooled,
        Transport::TTHeader | Transport::THeader => ConnectionMode::Multiplexed,
        _ => ConnectionMode::Pooled,
    });
    let limits = Limits::default();
    let (transport, protocol, timeout) = (o.transport, o.protocol, o.timeout);
    let policy = RetryPolicy::new().max_attempts(o.attempts);
    let mut retry = RetryLayer::new(policy).budget(RetryBudget::new(
        weft_middleware::retry::DEFAULT_TTL,
        weft_middleware::retry::DEFAULT_MIN_PER_SEC,
        o.budget_ratio,
    ));
    if o.idempotent_all {
        retry = retry.idempotency(PerMethod::new(true));
    } else if !o.idempotent.is_empty() {
        retry = retry.idempotent(o.idempotent.iter().cloned());
    }
    let strategy = match o.lb {
        WEFT_LB_ROUND_ROBIN => Strategy::RoundRobin,
        WEFT_LB_WEIGHTED_RANDOM => Strategy::WeightedRandom,
        WEFT_LB_CONSISTENT_HASH => {
            let key = o.hash_key.clone().ok_or_else(|| {
                Status::invalid_argument(
                    "consistent hashing needs weft_client_options_set_hash_key",
                )
            })?;
            Strategy::consistent_hash(move |cx: &Context| {
                let m = &cx.metainfo;
                m.persistent
                    .get(&key)
                    .or_else(|| m.transient.get(&key))
                    .map(|v| fnv1a(v))
            })
        }
        _ => Strategy::PowerOfTwoChoices,
    };
    let balance = BalanceConfig {
        strategy,
        breaker: if o.breakers {
            BalanceConfig::default().breaker
        } else {
            None
        },
        ..BalanceConfig::default()
    };
    let mut stack = ClientStack::new()
        .retry((o.attempts > 1).then_some(retry))
        .balance(balance);
    if !o.breakers {
        stack = stack.method_breaker(None);
    }
    if let Some(t) = o.attempt_timeout {
        stack = stack.attempt_timeout(PerMethod::new(Some(t)));
    }
    stack = stack.total_timeout(PerMethod::new(timeout));
    // Balancer tasks are spawned as the stack is built.
    let _enter = rt.enter();
    let stack = if o.grpc {
        Stack::Grpc(stack.build(discover, discovered, move |inst: &Instance| {
            let b = GrpcClient::builder(inst.address.clone());
            match timeout {
                Some(t) => b.timeout(t),
                None => b.no_timeout(),
            }
            .build()
        })?)
    } else {
        Stack::Thrift(stack.build(discover, discovered, move |inst: &Instance| {
            let codec = ThriftClientCodec::<Args, Outcome>::new(transport, protocol, &limits);
            ClientBuilder::new(inst.address.clone())
                .mode(mode)
                .timeout(timeout)
                .build(codec)
        })?)
    };
    drop(_enter);
    Ok(stack)
}

/// Create a client on `rt` from `opts` (which stay the caller's) and set
/// `*out` to it; free with `weft_client_free`. Connections are made on the
/// first calls, so an unreachable server shows in calls, not here. No
/// address in the options, or a consistent-hash strategy without a key:
/// `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_new(
    rt: *mut weft_runtime,
    opts: *const weft_client_options,
    out: *mut *mut weft_client,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let rt = weft_runtime::get(rt)?;
        // A copy: building may wait on etcd, and other threads may edit
        // the options meanwhile.
        let opts = weft_client_options::get(opts)?.lock().clone();
        let inner = build_client(rt, &opts)?;
        write_out(out, "out", weft_client::register(Arc::new(inner)))
    })
}

/// Free a client. NULL, freed and invalid handles are ignored. Calls in
/// flight still complete (their callbacks still run); connections close
/// once they have. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_free(client: *mut weft_client) {
    quiet((), || {
        let _ = weft_client::take(client);
    })
}

// ===== calls =====

/// A call's answer as C reads it. Free with `weft_reply_free`.
#[repr(C)]
#[derive(Debug)]
pub struct weft_reply {
    /// The encoded result struct (`method_result` in Apache's generated
    /// code), in the client's protocol: what the caller's Thrift library
    /// decodes. Owns the bytes of `exception` too. On a gRPC client: the
    /// encoded response message (no exception: a failure is a status).
    pub result: weft_bytes,
    /// 0 when the result holds no declared exception; otherwise the field id
    /// of the declared exception it holds (1 for the first `throws` entry).
    pub exception_id: i16,
    /// The declared exception's struct alone (inside `result`), when
    /// `exception_id` is not 0; else NULL.
    pub exception: *const u8,
    /// Its length in bytes.
    pub exception_len: usize,
}

impl weft_reply {
    pub(crate) const EMPTY: weft_reply = weft_reply {
        result: weft_bytes::EMPTY,
        exception_id: 0,
        exception: std::ptr::null(),
        exception_len: 0,
    };

    fn of(outcome: Outcome) -> Result<weft_reply, Status> {
        let Outcome::Result { bytes, exception } = outcome else {
            return Err(Status::internal("a client decoded an exception outcome"));
        };
        let (exception_id, exception, exception_len) = match exception {
            Some((id, range)) => (id, bytes[range.clone()].as_ptr(), range.len()),
            None => (0, std::ptr::null(), 0),
        };
        Ok(weft_reply {
            result: weft_bytes::of(bytes),
            exception_id,
            exception,
            exception_len,
        })
    }

    fn release(&mut self) {
        self.result.release();
        *self = weft_reply::EMPTY;
    }
}

/// Free what `reply` holds and empty it; freeing the same struct twice is
/// harmless, NULL is ignored. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_reply_free(reply: *mut weft_reply) {
    quiet((), || {
        if reply.is_null() {
            return;
        }
        // SAFETY: not null; the header documents it as a `weft_reply` the
        // caller owns.
        unsafe { &mut *reply }.release();
    })
}

pub(crate) type CallResult = Result<Response<Outcome>, Status>;

/// A call's future, on whichever stack the client has.
enum Call<T, G> {
    Thrift(T),
    Grpc(G),
}

/// Validate the arguments of a call and return its future, on the
/// client's shared stack. The args are copied: C's buffer is only borrowed
/// for the duration of the call.
fn start_call(
    client: *const weft_client,
    method: *const c_char,
    args: *const u8,
    args_len: usize,
    ctx: *const weft_ctx,
) -> Result<
    (
        Arc<ClientInner>,
        impl Future<Output = CallResult> + Send + 'static,
    ),
    Status,
> {
    let client = weft_client::get(client)?;
    let fut = start_call_on(&client, &client.stack, method, args, args_len, ctx)?;
    Ok((client, fut))
}

/// [`start_call`] on `stack`, one of `client`'s.
fn start_call_on(
    client: &ClientInner,
    stack: &Stack,
    method: *const c_char,
    args: *const u8,
    args_len: usize,
    ctx: *const weft_ctx,
) -> Result<impl Future<Output = CallResult> + Send + 'static, Status> {
    let method = str_arg(method, "method")?;
    if method.is_empty() {
        return Err(Status::invalid_argument("method is empty"));
    }
    let args = bytes_arg(args, args_len, "args")?;
    // gRPC names the method by its path; the context (which retries,
    // breakers and the server see) by its name.
    let grpc = match stack {
        Stack::Grpc(_) => {
            let desc = crate::grpc::method(method)?;
            Some((crate::grpc::call(desc, args)?, desc.name))
        }
        Stack::Thrift(_) => None,
    };
    let name = grpc.as_ref().map_or(method, |(_, name)| name);
    let (mut cx, cancel) = if ctx.is_null() {
        (
            Context::new(client.service.clone(), FastStr::new(name)),
            None,
        )
    } else {
        let ctx = weft_ctx::get(ctx)?;
        if ctx.cancel.is_cancelled() {
            return Err(crate::ctx::cancelled());
        }
        (
            ctx.for_call(&client.service, name),
            Some(ctx.cancel.clone()),
        )
    };
    let call = match (stack, grpc) {
        (Stack::Grpc(stack), Some((call, _))) => {
            if cx.service.is_empty() {
                let (service, _) = crate::grpc::split_path(method)?;
                cx.service = FastStr::new(service);
            }
            Call::Grpc(Box::pin(stack.clone().oneshot(Request::new(cx, call))))
        }
        (Stack::Thrift(stack), _) => {
            let bytes = Bytes::copy_from_slice(args);
            validate_struct(client.protocol, &bytes, "args")?;
            let req = Request::new(
                cx,
                Args {
                    bytes,
                    protocol: client.protocol,
                },
            );
            // Boxed: the stack's future is kilobytes, and unboxed it was
            // copied at each move on its way into the runtime (memcpy was
            // some 5% of a blocking call's CPU).
            Call::Thrift(Box::pin(stack.clone().oneshot(req)))
        }
        (Stack::Grpc(_), None) => {
            return Err(Status::internal("a gRPC call was not framed"));
        }
    };
    let fut = Cancel::run(cancel, async move {
        match call {
            Call::Thrift(f) => f.await,
            // An encoded response message: what the caller's protobuf
            // library decodes, with no declared exception in it.
            Call::Grpc(f) => f.await.map(|resp| {
                Response::new(
                    resp.cx,
                    Outcome::Result {
                        bytes: resp.message,
                        exception: None,
                    },
                )
            }),
        }
    });
    Ok(fut)
}

/// Call `method` with `args[0..args_len]`, the encoded args struct
/// (`method_args`) in the client's protocol, and wait for the answer. On
/// a gRPC client `method` is the path `/package.Service/Method` (else
/// `WEFT_INVALID_ARGUMENT`) and `args` the encoded request message, sent
/// as is; the server's status other than OK is the call's error, code and
/// message as sent.
/// `ctx` may be NULL; when given, its timeout and metainfo go with the
/// call, its backward metainfo is replaced by what the server sent back,
/// and `weft_ctx_cancel` on it (from another thread) ends the call with
/// `WEFT_CANCELLED`.
///
/// `WEFT_OK`: `*reply` holds the result struct (which may hold a declared
/// exception: see `weft_reply.exception_id`); free it with
/// `weft_reply_free`. Otherwise the call failed (`*reply` is left empty):
/// args that are not one struct in the client's protocol get
/// `WEFT_INVALID_ARGUMENT` before anything is sent; the server's own
/// errors and undeclared exceptions, timeouts (`WEFT_DEADLINE_EXCEEDED`),
/// unreachable servers (`WEFT_UNAVAILABLE`) get their codes.
///
/// Blocks the calling thread, which must not be one of Weft's (inside a
/// callback: `WEFT_FAILED_PRECONDITION`). The calling thread does the
/// call's I/O itself while it waits, so the call needs none of the
/// runtime's threads and costs no hop to one and back: on a client of
/// static addresses each calling thread (up to 16; calls from more go
/// through the runtime's threads) gets its own connections (pooled unless
/// the options set a connection mode), balancer, breakers and retry
/// budget for its blocking calls, made on its first call and kept until
/// the client is freed; the other call forms share
/// the client's. An etcd client's blocking calls, and all with
/// `weft_client_options_set_caller_io` off, go through the runtime's
/// threads. Thread-safe: any number of threads may call one client at
/// once.
#[no_mangle]
pub extern "C" fn weft_client_call(
    client: *const weft_client,
    method: *const c_char,
    args: *const u8,
    args_len: usize,
    ctx: *mut weft_ctx,
    reply: *mut weft_reply,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(reply, "reply")?;
        write_out(reply, "reply", weft_reply::EMPTY)?;
        let client = weft_client::get(client)?;
        crate::runtime::not_on_weft_thread()?;
        let resp = match client.local()? {
            Some(local) => local.block_on(start_call_on(
                &client,
                &local.stack,
                method,
                args,
                args_len,
                ctx,
            )?)?,
            None => client.rt.block_on(start_call_on(
                &client,
                &client.stack,
                method,
                args,
                args_len,
                ctx,
            )?)??,
        };
        if !ctx.is_null() {
            if let Ok(ctx) = weft_ctx::get(ctx) {
                ctx.state.lock().cx.metainfo.backward = resp.cx.metainfo.backward;
            }
        }
        write_out(reply, "reply", weft_reply::of(resp.message)?)
    })
}

/// The end of a call made with `weft_client_call_async` or
/// `weft_client_call_queued`. Its contents belong to whoever receives it;
/// release them with `weft_completion_release`.
#[repr(C)]
#[derive(Debug)]
pub struct weft_completion {
    /// The tag the call was started with.
    pub tag: u64,
    /// `WEFT_OK`, or the call's error code.
    pub code: weft_code,
    /// The answer, when `code` is `WEFT_OK`; else empty.
    pub reply: weft_reply,
    /// The error, when `code` is not `WEFT_OK`; else NULL.
    pub error: *mut weft_error,
    /// When `code` is `WEFT_OK`: a new context holding the backward
    /// metainfo the server sent (`WEFT_SCOPE_BACKWARD`); else NULL.
    pub ctx: *mut weft_ctx,
}

impl weft_completion {
    pub(crate) const EMPTY: weft_completion = weft_completion {
        tag: 0,
        code: crate::error::WEFT_OK,
        reply: weft_reply::EMPTY,
        error: std::ptr::null_mut(),
        ctx: std::ptr::null_mut(),
    };

    pub(crate) fn of(tag: u64, result: CallResult) -> weft_completion {
        let failed = |s: Status| weft_completion {
            tag,
            code: code_of(&s),
            error: weft_error::of(&s),
            ..weft_completion::EMPTY
        };
        match result {
            Ok(resp) => {
                let mut back = Context::default();
                back.metainfo.backward = resp.cx.metainfo.backward;
                match weft_reply::of(resp.message) {
                    Ok(reply) => weft_completion {
                        tag,
                        code: crate::error::WEFT_OK,
                        reply,
                        error: std::ptr::null_mut(),
                        ctx: weft_ctx::register(Ctx::of(back)),
                    },
                    Err(s) => failed(s),
                }
            }
            Err(s) => failed(s),
        }
    }
}

/// Free what `c` holds (reply, error, context) and empty it; releasing the
/// same struct twice is harmless, NULL is ignored. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_completion_release(c: *mut weft_completion) {
    quiet((), || {
        if c.is_null() {
            return;
        }
        // SAFETY: not null; the header documents it as a `weft_completion`
        // the caller owns.
        let c = unsafe { &mut *c };
        c.reply.release();
        let _ = weft_error::take(c.error);
        let _ = weft_ctx::take(c.ctx);
        *c = weft_completion::EMPTY;
    })
}

/// A completion callback: called once per call, on one of Weft's threads,
/// with `user_data` as given and a completion whose contents it owns (copy
/// the struct to keep them past the callback; release them with
/// `weft_completion_release`). It must not block for long (it holds one of
/// the runtime's threads) and must not make blocking Weft calls.
#[allow(non_camel_case_types)]
pub type weft_call_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, completion: *mut weft_completion)>;

/// Start a call like `weft_client_call`, without waiting: `cb` is called
/// once when it ends, with `tag` in the completion. Returns `WEFT_OK` once
/// the call is started (then `cb` will run exactly once, on a Weft thread,
/// possibly before this returns); otherwise an error and `cb` never runs.
/// `cb` NULL: `WEFT_INVALID_ARGUMENT`. `user_data` must be usable from
/// Weft's threads. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_call_async(
    client: *const weft_client,
    method: *const c_char,
    args: *const u8,
    args_len: usize,
    ctx: *const weft_ctx,
    tag: u64,
    cb: weft_call_cb,
    user_data: *mut c_void,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let cb = cb.ok_or_else(|| Status::invalid_argument("cb is null"))?;
        let (client, fut) = start_call(client, method, args, args_len, ctx)?;
        let user = UserData(user_data);
        let rt = client.rt.handle().clone();
        rt.spawn(async move {
            // The task keeps the client, and so the runtime, alive: freeing
            // both while the call is in flight still runs the callback.
            let _client = client;
            let result = fut.await;
            let user = user;
            let mut c = weft_completion::of(tag, result);
            // SAFETY: `cb` is the C function the caller gave for this call,
            // called once with its own `user_data` and a completion valid
            // for the duration of the call, as the header documents.
            unsafe { cb(user.0, &mut c) };
        });
        Ok(())
    })
}

/// Start a call like `weft_client_call`, without waiting: its completion,
/// with `tag`, goes into `queue` (see `weft_queue_take`). Returns `WEFT_OK`
/// once the call is started (then exactly one completion will be queued);
/// otherwise an error and none will. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_client_call_queued(
    client: *const weft_client,
    method: *const c_char,
    args: *const u8,
    args_len: usize,
    ctx: *const weft_ctx,
    queue: *const weft_queue,
    tag: u64,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let queue = weft_queue::get(queue)?;
        let (client, fut) = start_call(client, method, args, args_len, ctx)?;
        let rt = client.rt.handle().clone();
        rt.spawn(async move {
            let _client = client;
            let result = fut.await;
            queue.push(Done { tag, result });
        });
        Ok(())
    })
}
