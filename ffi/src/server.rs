//! Server options, the server handle, the C dispatcher and the responder it
//! answers through (at once, or later from any thread). One dispatcher
//! serves Thrift and, when asked, gRPC on the same port.

use std::{
    ffi::{c_char, c_void},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use faststr::FastStr;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use weft_core::{
    Address, Code, Instance, Request, Response, ServerBuilder, ServerHandle, Status, DEFAULT_WEIGHT,
};
use weft_discovery::{EtcdConfig, EtcdRegistry};
use weft_middleware::ServerStack;
use weft_protobuf::{GrpcLimits, GrpcServer, RawRequest};

use crate::{
    buf::{weft_bytes, UserData},
    client::{protocol_id, WEFT_PROTOCOL_PROTOBUF},
    ctx::{weft_ctx, Ctx, CTXS},
    error::{bytes_arg, check_out, guard, quiet, str_arg, weft_code, weft_error, write_out},
    etcd::EtcdTarget,
    handle::{handle_type, Refused},
    raw::{validate_struct, Args, FfiServerCodec, Outcome},
    runtime::{weft_runtime, Runtime},
};

/// How long a call waits for its handler's answer when the caller set no
/// deadline: a handler that never answers must not hold the call forever.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

// ===== options =====

#[derive(Debug)]
pub(crate) struct ServerOptions {
    handler_timeout: Duration,
    drain_timeout: Option<Duration>,
    max_concurrency: Option<usize>,
    etcd: Option<(EtcdTarget, u32)>,
    advertise: Option<Address>,
    deregister_grace: Option<Duration>,
    grpc: bool,
    /// The gRPC services routed to the dispatcher; empty: all.
    grpc_services: Vec<String>,
    grpc_max_message: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            drain_timeout: None,
            max_concurrency: None,
            etcd: None,
            advertise: None,
            deregister_grace: None,
            grpc: false,
            grpc_services: Vec::new(),
            grpc_max_message: weft_protobuf::limits::DEFAULT_MAX_RECV_MESSAGE,
        }
    }
}

/// Options for `weft_server_serve`. Thread-safe (a lock inside).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_server_options {
    _opaque: [u8; 0],
}

handle_type!(
    weft_server_options,
    Mutex<ServerOptions>,
    SERVER_OPTIONS,
    0x40,
    "weft_server_options"
);

/// Create server options with the defaults: a 30 s handler timeout for
/// calls without a deadline, the server's 30 s drain timeout, no
/// concurrency limit. Free with `weft_server_options_free`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_new(
    out: *mut *mut weft_server_options,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        write_out(
            out,
            "out",
            weft_server_options::register(Arc::new(Mutex::new(ServerOptions::default()))),
        )
    })
}

/// Free server options. NULL, freed and invalid handles are ignored.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_free(opts: *mut weft_server_options) {
    quiet((), || {
        let _ = weft_server_options::take(opts);
    })
}

fn positive_ms(ms: i64, what: &str) -> Result<Duration, Status> {
    if ms <= 0 {
        return Err(Status::invalid_argument(format!(
            "{what} {ms} is not positive"
        )));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// How long a call without a deadline waits for the handler's answer
/// before the caller gets `WEFT_DEADLINE_EXCEEDED` (a call with a deadline
/// waits until it). Must be positive. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_handler_timeout_ms(
    opts: *mut weft_server_options,
    timeout_ms: i64,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let t = positive_ms(timeout_ms, "timeout_ms")?;
        weft_server_options::get(opts)?.lock().handler_timeout = t;
        Ok(())
    })
}

/// How long a graceful shutdown lets calls in flight finish before they
/// are answered `UNAVAILABLE`. Must be positive. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_drain_timeout_ms(
    opts: *mut weft_server_options,
    timeout_ms: i64,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let t = positive_ms(timeout_ms, "timeout_ms")?;
        weft_server_options::get(opts)?.lock().drain_timeout = Some(t);
        Ok(())
    })
}

/// Shed calls beyond `max` in flight with `WEFT_RESOURCE_EXHAUSTED` (safe
/// for the caller to retry elsewhere); 0 removes the limit. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_max_concurrency(
    opts: *mut weft_server_options,
    max: usize,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        weft_server_options::get(opts)?.lock().max_concurrency = (max > 0).then_some(max);
        Ok(())
    })
}

/// Register the server in etcd once it listens, and deregister it first
/// thing in `weft_server_shutdown`: `endpoints` is one or more etcd URLs,
/// comma-separated (`"http://127.0.0.1:2379"`), `service` the name clients
/// look it up by (`weft_client_options_set_etcd`, Weft's `EtcdDiscover`),
/// `weight` its share of traffic (0: Weft's default, 100). The key is
/// `/weft/services/<service>/<address>` (the bound address, or the one
/// given to `weft_server_options_set_advertise`), under a lease kept
/// alive while the server runs: a server freed without a shutdown, or a
/// process that dies, leaves it until the lease expires (10 s). When etcd
/// refuses the registration, `weft_server_serve` fails with
/// `WEFT_UNAVAILABLE` and nothing is left serving. Empty or non-URL
/// endpoints, an empty service: `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_etcd(
    opts: *mut weft_server_options,
    endpoints: *const c_char,
    service: *const c_char,
    weight: u32,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let endpoints = str_arg(endpoints, "endpoints")?;
        let service = str_arg(service, "service")?;
        let target = EtcdTarget::parse(endpoints, service)?;
        let weight = if weight == 0 { DEFAULT_WEIGHT } else { weight };
        weft_server_options::get(opts)?.lock().etcd = Some((target, weight));
        Ok(())
    })
}

/// The address to register in etcd instead of the bound one (bound to
/// `0.0.0.0`, or behind NAT): `"host:port"` or `"unix:/path"`. Only
/// with `weft_server_options_set_etcd`. A malformed address:
/// `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_advertise(
    opts: *mut weft_server_options,
    address: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let a = str_arg(address, "address")?;
        let addr = a
            .parse::<Address>()
            .map_err(|e| Status::invalid_argument(format!("address {a:?}: {e}")))?;
        weft_server_options::get(opts)?.lock().advertise = Some(addr);
        Ok(())
    })
}

/// How long a shutdown keeps serving between deregistering from etcd and
/// draining, so that clients see the server leave before it refuses
/// calls: `grace_ms` >= 0. Default 1 s. Only with
/// `weft_server_options_set_etcd`. Negative: `WEFT_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_deregister_grace_ms(
    opts: *mut weft_server_options,
    grace_ms: i64,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        if grace_ms < 0 {
            return Err(Status::invalid_argument(format!(
                "grace_ms {grace_ms} is negative"
            )));
        }
        weft_server_options::get(opts)?.lock().deregister_grace =
            Some(Duration::from_millis(grace_ms as u64));
        Ok(())
    })
}

/// Serve gRPC too (`enabled` true), on the same port as Thrift: a
/// connection that opens with HTTP/2's preface is gRPC, any other Thrift.
/// Each unary gRPC call reaches the dispatcher with `protocol`
/// `WEFT_PROTOCOL_PROTOBUF`, `method` the call's path
/// (`/package.Service/Method`, as a `WEFT_TRANSPORT_GRPC` client names
/// it), `service` the service's name and `args` the encoded request
/// message (decompressed); the dispatcher answers with the encoded reply
/// message (`weft_responder_reply`) or an error (`weft_responder_error`,
/// sent as `grpc-status` and `grpc-message`). Calls to services not
/// named with `weft_server_options_add_grpc_service` (when any are) and
/// malformed paths get `UNIMPLEMENTED` without reaching the dispatcher;
/// messages over the limit (`weft_server_options_set_grpc_max_message`)
/// get `RESOURCE_EXHAUSTED`; streaming calls are not served. Default
/// off. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_grpc(
    opts: *mut weft_server_options,
    enabled: bool,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        weft_server_options::get(opts)?.lock().grpc = enabled;
        Ok(())
    })
}

/// Serve gRPC (as `weft_server_options_set_grpc` does) for the service
/// `service` (`"package.Service"`, NUL-terminated): once one is added,
/// only the added services reach the dispatcher and calls to others get
/// `UNIMPLEMENTED`. Adding the same name twice is harmless. An empty or
/// malformed name (not letters, digits, `.`, `_`, `-`):
/// `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_add_grpc_service(
    opts: *mut weft_server_options,
    service: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let name = str_arg(service, "service")?;
        crate::grpc::split_path(&format!("/{name}/m")).map_err(|_| {
            Status::invalid_argument(format!(
                "gRPC service {name:?} is not a name package.Service"
            ))
        })?;
        let o = weft_server_options::get(opts)?;
        let mut o = o.lock();
        o.grpc = true;
        if !o.grpc_services.iter().any(|s| s == name) {
            o.grpc_services.push(name.to_owned());
        }
        Ok(())
    })
}

/// The largest gRPC request message accepted, in bytes, after
/// decompression (> 0): a larger one is answered `RESOURCE_EXHAUSTED`
/// before the dispatcher sees it. Default 4 MiB, as every gRPC
/// implementation's. Thrift calls are bounded by the frame limit (16 MiB)
/// instead. 0: `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_options_set_grpc_max_message(
    opts: *mut weft_server_options,
    max_bytes: usize,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        if max_bytes == 0 {
            return Err(Status::invalid_argument("max_bytes is 0"));
        }
        weft_server_options::get(opts)?.lock().grpc_max_message = max_bytes;
        Ok(())
    })
}

// ===== the dispatcher and the responder =====

/// A call as the dispatcher sees it. Everything in it is borrowed and valid
/// only until the dispatcher returns, except `ctx`, which stays valid until
/// the call is answered or ends. `method` and `service` are UTF-8, not
/// NUL-terminated.
#[repr(C)]
#[derive(Debug)]
pub struct weft_request {
    /// The method called; for gRPC its whole path,
    /// `/package.Service/Method`.
    pub method: *const u8,
    /// Its length in bytes.
    pub method_len: usize,
    /// The IDL service named by the caller (multiplexed name or TTHeader),
    /// possibly empty; for gRPC the service in the path (`package.Service`).
    pub service: *const u8,
    /// Its length in bytes.
    pub service_len: usize,
    /// The encoded args struct (`method_args`), in `protocol`; for gRPC the
    /// encoded request message.
    pub args: *const u8,
    /// Its length in bytes.
    pub args_len: usize,
    /// The protocol of `args`, which the answer must be encoded in too
    /// (`WEFT_PROTOCOL_*`): `WEFT_PROTOCOL_PROTOBUF` for a gRPC call.
    pub protocol: i32,
    /// True for a one-way call: its answer is dropped, but it must still be
    /// given (or the responder freed) to end the call.
    pub oneway: bool,
    /// The call's context: its deadline and the caller's metainfo (read
    /// `WEFT_SCOPE_PERSISTENT` and `WEFT_SCOPE_UPSTREAM`); backward values
    /// set here (`WEFT_SCOPE_BACKWARD`) go back with the answer. Owned by
    /// the call: do not free it.
    pub ctx: *mut weft_ctx,
}

/// The dispatcher: called once per call, on one of Weft's threads
/// (concurrently from several), with the `user_data` given to
/// `weft_server_serve`. It must answer through `responder`, once, before
/// returning or later from any thread; until it does the call waits (up to
/// its deadline, or the handler timeout). It must not block for long: it
/// holds its connection's reader while it runs.
#[allow(non_camel_case_types)]
pub type weft_dispatch_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const weft_request,
        responder: *mut weft_responder,
    ),
>;

/// What a call's answer is encoded in.
#[derive(Debug, Clone, Copy)]
enum Wire {
    Thrift(weft_thrift::Protocol),
    /// A gRPC call: a protobuf message, no declared exceptions.
    Protobuf,
}

struct Pending {
    tx: oneshot::Sender<Result<Outcome, Status>>,
    wire: Wire,
}

/// One call's way back; `None` once answered.
#[derive(Debug)]
pub(crate) struct Responder {
    pending: Mutex<Option<Pending>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("wire", &self.wire).finish()
    }
}

/// The way to answer one call. Every `weft_responder_*` function uses
/// it up: afterwards the handle is invalid (answering twice gets
/// `WEFT_FAILED_PRECONDITION`). It also becomes invalid when the call
/// ends without an answer (deadline passed, caller gone, server shut
/// down). Thread-safe.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_responder {
    _opaque: [u8; 0],
}

handle_type!(
    weft_responder,
    Responder,
    RESPONDERS,
    0x41,
    "weft_responder"
);

/// Take the responder out (using it up) and send `answer`, unless the call
/// ended already.
fn answer(
    responder: *mut weft_responder,
    answer: impl FnOnce(Wire) -> (Result<Outcome, Status>, Result<(), Status>),
) -> Result<(), Status> {
    let r = weft_responder::take(responder).map_err(|e| {
        if e.code() == Code::FailedPrecondition {
            Status::new(
                Code::FailedPrecondition,
                "the responder was already used, or its call ended (deadline passed, \
                 caller gone, server shut down)",
            )
        } else {
            e
        }
    })?;
    let pending =
        r.pending.lock().take().ok_or_else(|| {
            Status::new(Code::FailedPrecondition, "the responder was already used")
        })?;
    let (sent, verdict) = answer(pending.wire);
    if pending.tx.send(sent).is_err() {
        verdict?;
        return Err(Status::new(
            Code::DeadlineExceeded,
            "the call ended (deadline passed or caller gone) before this answer",
        ));
    }
    verdict
}

fn invalid_answer(e: Status) -> (Result<Outcome, Status>, Result<(), Status>) {
    (
        Err(Status::internal(format!(
            "the handler answered garbage: {}",
            e.message()
        ))),
        Err(e),
    )
}

/// Answer with `result[0..result_len]`, the encoded result struct
/// (`method_result`, success or a declared exception set in it) in the
/// call's protocol; for a gRPC call, the encoded reply message. Uses the
/// responder up whatever happens: bytes that are not one struct in that
/// protocol (for gRPC: not protobuf's wire format, or over the 16 MiB send
/// limit) get `WEFT_INVALID_ARGUMENT` here and the caller gets `INTERNAL`.
/// A used or ended responder: `WEFT_FAILED_PRECONDITION`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_responder_reply(
    responder: *mut weft_responder,
    result: *const u8,
    result_len: usize,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let bytes = bytes_arg(result, result_len, "result").map(Bytes::copy_from_slice);
        answer(responder, |wire| {
            let checked = bytes.and_then(|b| {
                match wire {
                    Wire::Thrift(protocol) => validate_struct(protocol, &b, "result"),
                    Wire::Protobuf => reply_message(&b),
                }
                .map(|()| b)
            });
            let bytes = match checked {
                Ok(b) => b,
                Err(e) => return invalid_answer(e),
            };
            (
                Ok(Outcome::Result {
                    bytes,
                    exception: None,
                }),
                Ok(()),
            )
        })
    })
}

/// Answer with the declared exception `exception[0..exception_len]` (the
/// exception struct alone, in the call's protocol), which is field
/// `field_id` (> 0) of the method's result struct. Uses the responder up
/// whatever happens; invalid bytes, a field id not above 0, or a gRPC
/// call (gRPC has no declared exceptions: answer with
/// `weft_responder_error`): `WEFT_INVALID_ARGUMENT` here, `INTERNAL` for
/// the caller. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_responder_exception(
    responder: *mut weft_responder,
    field_id: i16,
    exception: *const u8,
    exception_len: usize,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let bytes = bytes_arg(exception, exception_len, "exception").map(Bytes::copy_from_slice);
        answer(responder, |wire| {
            let protocol =
                match wire {
                    Wire::Thrift(p) => p,
                    Wire::Protobuf => return invalid_answer(Status::invalid_argument(
                        "a gRPC call has no declared exceptions: answer with weft_responder_error",
                    )),
                };
            if field_id <= 0 {
                return invalid_answer(Status::invalid_argument(format!(
                    "field_id {field_id} is not a declared exception's (> 0)"
                )));
            }
            let bytes =
                match bytes.and_then(|b| validate_struct(protocol, &b, "exception").map(|()| b)) {
                    Ok(b) => b,
                    Err(e) => return invalid_answer(e),
                };
            (
                Ok(Outcome::Exception {
                    id: field_id,
                    bytes,
                }),
                Ok(()),
            )
        })
    })
}

/// Answer with an error: `code` (`WEFT_CANCELLED` ... `WEFT_UNAUTHENTICATED`)
/// and `message` (NUL-terminated UTF-8, or NULL for none), which the caller
/// receives as a `TApplicationException` (Weft callers see the same code);
/// a gRPC caller receives them as `grpc-status` and `grpc-message`.
/// Uses the responder up; a code outside the set, or `WEFT_OK`, gets
/// `WEFT_INVALID_ARGUMENT` here and the caller `UNKNOWN`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_responder_error(
    responder: *mut weft_responder,
    code: weft_code,
    message: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let message = if message.is_null() {
            Ok(String::new())
        } else {
            str_arg(message, "message").map(str::to_owned)
        };
        answer(responder, |_| {
            let message = match message {
                Ok(m) => m,
                Err(e) => return invalid_answer(e),
            };
            if !(1..=16).contains(&code) {
                let e = Status::invalid_argument(format!("code {code} is not an error code"));
                return (Err(Status::unknown(message)), Err(e));
            }
            (Err(Status::new(Code::from_i32(code), message)), Ok(()))
        })
    })
}

/// Give up on a call without answering it: the caller gets `INTERNAL`.
/// NULL, used and invalid handles are ignored. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_responder_free(responder: *mut weft_responder) {
    quiet((), || {
        let _ = answer(responder, |_| {
            (
                Err(Status::internal(
                    "the handler dropped the call without answering",
                )),
                Ok(()),
            )
        });
    })
}

/// Unregisters a call's ctx and responder handles when the call ends,
/// however it ends: a late answer then finds a stale handle.
struct CallHandles {
    ctx: usize,
    responder: usize,
}

impl Drop for CallHandles {
    fn drop(&mut self) {
        let _ = CTXS.remove(self.ctx);
        let _: Result<_, Refused> = RESPONDERS.remove(self.responder);
    }
}

#[derive(Clone)]
struct Dispatcher {
    f: unsafe extern "C" fn(*mut c_void, *const weft_request, *mut weft_responder),
    user: UserData,
    handler_timeout: Duration,
}

/// The largest reply message a gRPC dispatcher may give: the gRPC
/// server's send limit, checked at the responder so the C caller hears of it.
const MAX_GRPC_REPLY: usize = weft_protobuf::limits::DEFAULT_MAX_SEND_MESSAGE;

fn reply_message(b: &[u8]) -> Result<(), Status> {
    if b.len() > MAX_GRPC_REPLY {
        return Err(Status::invalid_argument(format!(
            "the reply message is {} bytes, over the {MAX_GRPC_REPLY}-byte limit",
            b.len()
        )));
    }
    crate::grpc::validate_message(b, "the reply")
}

async fn dispatch_thrift(d: Dispatcher, req: Request<Args>) -> Result<Response<Outcome>, Status> {
    let Request { cx, message } = req;
    let method = cx.method.clone();
    let wire = Wire::Thrift(message.protocol);
    let (out, outcome) = dispatch(d, cx, method, message.bytes, wire).await?;
    Ok(Response::new(out, outcome))
}

async fn dispatch_grpc(d: Dispatcher, req: Request<RawRequest>) -> Result<Response<Bytes>, Status> {
    let Request { cx, message } = req;
    let (out, outcome) = dispatch(d, cx, message.path, message.message, Wire::Protobuf).await?;
    match outcome {
        Outcome::Result { bytes, .. } => Ok(Response::new(out, bytes)),
        // Refused by the responder before it is sent.
        Outcome::Exception { .. } => Err(Status::internal(
            "the handler answered a gRPC call with an exception",
        )),
    }
}

/// Hand one call to the C dispatcher and wait for its answer: `method` is
/// what the dispatcher is told (the name, or a gRPC call's path).
async fn dispatch(
    d: Dispatcher,
    cx: weft_core::Context,
    method: FastStr,
    args: Bytes,
    wire: Wire,
) -> Result<(weft_core::Context, Outcome), Status> {
    let (tx, rx) = oneshot::channel();
    // A handler reads the caller's trace context as upstream metainfo,
    // where the codec does not put a version-00 one.
    let mut cx = cx;
    cx.upstream_trace_into_metainfo();
    let deadline = cx.deadline;
    let (service, oneway) = (cx.service.clone(), cx.oneway);
    let ctx = Arc::new(Ctx {
        state: Mutex::new(crate::ctx::CtxState { cx, timeout: None }),
        call: true,
        cancel: Arc::default(),
    });
    let responder = Arc::new(Responder {
        pending: Mutex::new(Some(Pending { tx, wire })),
    });
    // The handles are raw pointers: they stay inside this block, so the
    // future holds none of them across the wait below.
    let _handles = {
        let ctx_handle = weft_ctx::register(ctx.clone());
        let responder_handle = weft_responder::register(responder);
        let handles = CallHandles {
            ctx: ctx_handle.addr(),
            responder: responder_handle.addr(),
        };
        let request = weft_request {
            method: method.as_ptr(),
            method_len: method.len(),
            service: service.as_ptr(),
            service_len: service.len(),
            args: args.as_ptr(),
            args_len: args.len(),
            protocol: match wire {
                Wire::Thrift(p) => protocol_id(p),
                Wire::Protobuf => WEFT_PROTOCOL_PROTOBUF,
            },
            oneway,
            ctx: ctx_handle,
        };
        // SAFETY: `f` is the dispatcher C gave `weft_server_serve`, called
        // with its own user data, a request that lives (with the bytes it
        // points into) until it returns, and a registered responder.
        unsafe { (d.f)(d.user.0, &request, responder_handle) };
        handles
    };
    let waited = match deadline {
        Some(at) => tokio::time::timeout_at(at, rx).await,
        None => tokio::time::timeout(d.handler_timeout, rx).await,
    };
    match waited {
        Ok(Ok(Ok(outcome))) => {
            let mut out = weft_core::Context::default();
            out.metainfo.backward = std::mem::take(&mut ctx.state.lock().cx.metainfo.backward);
            Ok((out, outcome))
        }
        Ok(Ok(Err(status))) => Err(status),
        Ok(Err(_)) => Err(Status::internal(
            "the handler dropped the call without answering",
        )),
        Err(_) => Err(Status::new(
            Code::DeadlineExceeded,
            format!("the handler did not answer {method} in time"),
        )),
    }
}

// ===== server =====

pub(crate) struct ServerInner {
    rt: Arc<Runtime>,
    handle: Mutex<Option<ServerHandle>>,
    local_addr: Address,
}

impl std::fmt::Debug for ServerInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerInner")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for ServerInner {
    fn drop(&mut self) {
        if let Some(h) = self.handle.get_mut().take() {
            // Freed without a shutdown: close everything now.
            if tokio::runtime::Handle::try_current().is_ok() {
                self.rt.handle().spawn(h.abort());
            } else {
                self.rt.handle().block_on(h.abort());
            }
        }
    }
}

/// A running server. Thread-safe.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_server {
    _opaque: [u8; 0],
}

handle_type!(weft_server, ServerInner, SERVERS, 0x42, "weft_server");

/// Serve Thrift on `address` (`"host:port"`, port 0 for any free one, or
/// `"unix:/path"`) on `rt`, calling `dispatch` for every call, and set
/// `*out` to the server once it listens; `opts` may be NULL for the
/// defaults. Every transport and protocol is served on the one port
/// (TTHeader, THeader, framed, buffered; binary or compact), detected per
/// connection, and gRPC too when the options say so
/// (`weft_server_options_set_grpc`). `dispatch` and `user_data` must stay valid until
/// `weft_server_shutdown` (or `weft_server_free`) has returned; after that
/// `dispatch` is never called again. Blocks while binding, so not from a
/// Weft thread. A bind failure: `WEFT_UNAVAILABLE`; NULL `dispatch`, a bad
/// address: `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_serve(
    rt: *mut weft_runtime,
    opts: *const weft_server_options,
    address: *const c_char,
    dispatch: weft_dispatch_fn,
    user_data: *mut c_void,
    out: *mut *mut weft_server,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let rt = weft_runtime::get(rt)?;
        let f = dispatch.ok_or_else(|| Status::invalid_argument("dispatch is null"))?;
        let a = str_arg(address, "address")?;
        let addr = a
            .parse::<Address>()
            .map_err(|e| Status::invalid_argument(format!("address {a:?}: {e}")))?;
        let o = if opts.is_null() {
            ServerOptions::default()
        } else {
            let o = weft_server_options::get(opts)?;
            let o = o.lock();
            ServerOptions {
                etcd: o.etcd.clone(),
                advertise: o.advertise.clone(),
                grpc_services: o.grpc_services.clone(),
                ..*o
            }
        };
        let (handler_timeout, drain, max) = (o.handler_timeout, o.drain_timeout, o.max_concurrency);
        let d = Dispatcher {
            f,
            user: UserData(user_data),
            handler_timeout,
        };
        let mut stack = ServerStack::new();
        if let Some(max) = max {
            stack = stack.concurrency_limit(max);
        }
        let mut builder = ServerBuilder::new();
        if let Some(t) = drain {
            builder = builder.drain_timeout(t);
        }
        if o.grpc {
            let d = d.clone();
            let handler =
                tower::service_fn(move |req: Request<RawRequest>| dispatch_grpc(d.clone(), req));
            // A clone of the stack shares its limits: one concurrency
            // bound for Thrift and gRPC calls together.
            let service = stack.clone().build(handler);
            let mut grpc = GrpcServer::new().limits(GrpcLimits {
                max_recv_message: o.grpc_max_message,
                ..GrpcLimits::default()
            });
            if o.grpc_services.is_empty() {
                grpc = grpc.fallback(service);
            } else {
                for name in &o.grpc_services {
                    grpc = grpc.add_raw_service(FastStr::new(name), service.clone());
                }
            }
            builder = builder.protocol(grpc);
        }
        let handler = tower::service_fn(move |req: Request<Args>| dispatch_thrift(d.clone(), req));
        let limits = builder.limits_ref().clone();
        let service = stack.build(handler);
        let handle = rt
            .block_on(async {
                if let Some((etcd, weight)) = &o.etcd {
                    let registry = EtcdRegistry::connect(&etcd.endpoints, EtcdConfig::default())
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    builder = builder.register(
                        Arc::new(registry),
                        etcd.service.clone(),
                        Instance::new(addr.clone()).with_weight(*weight),
                    );
                    if let Some(adv) = &o.advertise {
                        builder = builder.advertise(adv.clone());
                    }
                    if let Some(grace) = o.deregister_grace {
                        builder = builder.deregister_grace(grace);
                    }
                }
                builder
                    .serve(&addr, move || FfiServerCodec::new(&limits), service)
                    .await
            })?
            .map_err(|e| Status::unavailable(format!("serving on {a}: {e}")))?;
        let local_addr = handle.local_addr().clone();
        let inner = ServerInner {
            rt,
            handle: Mutex::new(Some(handle)),
            local_addr,
        };
        write_out(out, "out", weft_server::register(Arc::new(inner)))
    })
}

/// Set `*out` to the address the server listens on (`"127.0.0.1:40123"`,
/// `"unix:/path"`), NUL-terminated; free it with `weft_bytes_free`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_local_addr(
    server: *const weft_server,
    out: *mut weft_bytes,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let s = weft_server::get(server)?;
        write_out(out, "out", weft_bytes::text(&s.local_addr.to_string()))
    })
}

/// Shut down gracefully and wait until done: stop accepting, answer calls
/// in flight (up to the drain timeout; later ones get `UNAVAILABLE`),
/// refuse new ones as not processed (safe for callers to retry elsewhere),
/// close. When it returns, the dispatcher is not running and will not be
/// called again. The handle stays valid until `weft_server_free`; a second
/// shutdown gets `WEFT_FAILED_PRECONDITION`. Blocks, so not from a Weft
/// thread. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_shutdown(
    server: *mut weft_server,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let s = weft_server::get(server)?;
        // Check before taking the handle: refused here, it must still be
        // there for the free.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Status::new(
                Code::FailedPrecondition,
                "weft_server_shutdown blocks: not from one of Weft's own threads",
            ));
        }
        let h = s.handle.lock().take().ok_or_else(|| {
            Status::new(Code::FailedPrecondition, "the server was shut down already")
        })?;
        s.rt.block_on(h.shutdown())
    })
}

/// Free a server; one still running is closed at once (calls in flight are
/// dropped), and blocks until then unless called from a Weft thread. NULL,
/// freed and invalid handles are ignored. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_server_free(server: *mut weft_server) {
    quiet((), || {
        let _ = weft_server::take(server);
    })
}
