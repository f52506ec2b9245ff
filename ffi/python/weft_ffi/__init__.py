"""Weft's Thrift (and gRPC) clients and servers from Python, through the C
ABI shim (libweft).

Messages are Apache Thrift's own (`thrift --gen py`): the args struct is
encoded here with Apache's protocol classes, Weft carries it (TTHeader,
framed or buffered; balancing, retries, breakers, deadlines, metainfo) and
the result struct comes back to be decoded by the generated class. A
declared exception is raised as the IDL's exception class; any other
failure as `WeftError` with Weft's status code.

    client = Client(["127.0.0.1:9090"], service="Echo")
    total = client.call("add", Echo.add_args(a=1, b=2), Echo.add_result)
    # asyncio: the completions arrive through a file descriptor the event
    # loop watches, not a thread per call.
    total = await client.call_async("add", Echo.add_args(a=1, b=2), Echo.add_result)

gRPC too: `Client(addrs, transport="grpc")` calls with grpcio-tools
messages, and `Server(None, grpc=True)` serves grpcio-tools servicers.
"""
import asyncio
import ctypes
import itertools
import os
from ctypes import (POINTER, Structure, byref, c_bool, c_char_p, c_double, c_int,
                    c_int16, c_int32, c_int64, c_size_t, c_uint32, c_uint64,
                    c_void_p)
from pathlib import Path

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport import TTransport

__all__ = ["Client", "Context", "Server", "ServicerContext", "WeftError", "CODES"]

CODES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
_TRANSPORTS = {"ttheader": 0, "framed": 1, "buffered": 2, "theader": 3, "grpc": 4}
_PROTOCOLS = {"binary": 0, "compact": 1, "protobuf": 2}
_MODES = {"multiplexed": 0, "pooled": 1}
_LB = {"p2c": 0, "round_robin": 1, "weighted_random": 2, "consistent_hash": 3}
SCOPE_PERSISTENT, SCOPE_TRANSIENT, SCOPE_BACKWARD, SCOPE_UPSTREAM = 0, 1, 2, 3
_PROTOBUF = 2
# The codes of grpc.StatusCode by name, the same numbers as Weft's.
_CODE_OF = {name: code for code, name in CODES.items()}


class WeftError(Exception):
    """A call failed: `code` is Weft's status code, `name` its name."""

    def __init__(self, code, message):
        super().__init__(f"{CODES.get(code, code)}: {message}")
        self.code = code
        self.name = CODES.get(code, "UNKNOWN")
        self.message = message


class _Bytes(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("owner", c_void_p)]


class _Reply(Structure):
    _fields_ = [("result", _Bytes), ("exception_id", c_int16),
                ("exception", c_void_p), ("exception_len", c_size_t)]


class _Request(Structure):
    _fields_ = [("method", c_void_p), ("method_len", c_size_t),
                ("service", c_void_p), ("service_len", c_size_t),
                ("args", c_void_p), ("args_len", c_size_t),
                ("protocol", c_int32), ("oneway", c_bool), ("ctx", c_void_p)]


_DISPATCH = ctypes.CFUNCTYPE(None, c_void_p, POINTER(_Request), c_void_p)


class _Completion(Structure):
    _fields_ = [("tag", c_uint64), ("code", c_int32), ("reply", _Reply),
                ("error", c_void_p), ("ctx", c_void_p)]


def _load():
    path = os.environ.get("WEFT_LIB")
    if not path:
        here = Path(__file__).resolve().parent
        for name in ("libweft.so", "libweft.dylib"):
            if (here / name).exists():
                path = str(here / name)
                break
    if not path:
        raise ImportError("libweft not found: install with `pip install ./ffi/python`, "
                          "or set WEFT_LIB to the library's path")
    lib = ctypes.CDLL(path)
    E = POINTER(c_void_p)  # weft_error **
    P = POINTER(c_void_p)  # out-handle
    sig = {
        "weft_runtime_new": ([c_uint32, P, E], c_int32),
        "weft_runtime_free": ([c_void_p], None),
        "weft_client_options_new": ([P, E], c_int32),
        "weft_client_options_free": ([c_void_p], None),
        "weft_client_options_add_address": ([c_void_p, c_char_p, E], c_int32),
        "weft_client_options_set_service": ([c_void_p, c_char_p, E], c_int32),
        "weft_client_options_set_codec": ([c_void_p, c_int32, c_int32, E], c_int32),
        "weft_client_options_set_connection_mode": ([c_void_p, c_int32, E], c_int32),
        "weft_client_options_set_timeout_ms": ([c_void_p, c_int64, E], c_int32),
        "weft_client_options_set_retries": ([c_void_p, c_uint32, c_double, E], c_int32),
        "weft_client_options_set_load_balance": ([c_void_p, c_int32, E], c_int32),
        "weft_client_options_set_etcd": ([c_void_p, c_char_p, c_char_p, E], c_int32),
        "weft_client_options_set_caller_io": ([c_void_p, c_bool, E], c_int32),
        "weft_server_options_new": ([P, E], c_int32),
        "weft_server_options_free": ([c_void_p], None),
        "weft_server_options_set_etcd": ([c_void_p, c_char_p, c_char_p, c_uint32, E], c_int32),
        "weft_server_options_set_advertise": ([c_void_p, c_char_p, E], c_int32),
        "weft_server_options_set_deregister_grace_ms": ([c_void_p, c_int64, E], c_int32),
        "weft_server_options_set_grpc": ([c_void_p, c_bool, E], c_int32),
        "weft_server_options_add_grpc_service": ([c_void_p, c_char_p, E], c_int32),
        "weft_server_options_set_grpc_max_message": ([c_void_p, c_size_t, E], c_int32),
        "weft_ctx_remaining_ms": ([c_void_p, POINTER(c_int64), E], c_int32),
        "weft_client_new": ([c_void_p, c_void_p, P, E], c_int32),
        "weft_client_free": ([c_void_p], None),
        "weft_client_call": ([c_void_p, c_char_p, c_char_p, c_size_t, c_void_p,
                              POINTER(_Reply), E], c_int32),
        "weft_client_call_queued": ([c_void_p, c_char_p, c_char_p, c_size_t, c_void_p,
                                     c_void_p, c_uint64, E], c_int32),
        "weft_reply_free": ([POINTER(_Reply)], None),
        "weft_completion_release": ([POINTER(_Completion)], None),
        "weft_queue_new": ([P, E], c_int32),
        "weft_queue_free": ([c_void_p], None),
        "weft_queue_fd": ([c_void_p, POINTER(c_int), E], c_int32),
        "weft_queue_take": ([c_void_p, POINTER(_Completion), c_size_t, POINTER(c_size_t), E],
                            c_int32),
        "weft_ctx_new": ([P, E], c_int32),
        "weft_ctx_free": ([c_void_p], None),
        "weft_ctx_set_timeout_ms": ([c_void_p, c_int64, E], c_int32),
        "weft_ctx_set": ([c_void_p, c_int32, c_char_p, c_char_p, E], c_int32),
        "weft_ctx_count": ([c_void_p, c_int32, POINTER(c_size_t), E], c_int32),
        "weft_ctx_entry": ([c_void_p, c_int32, c_size_t, POINTER(_Bytes), POINTER(_Bytes), E],
                           c_int32),
        "weft_bytes_free": ([POINTER(_Bytes)], None),
        "weft_error_message": ([c_void_p], c_char_p),
        "weft_error_free": ([c_void_p], None),
        "weft_live_handles": ([], c_size_t),
        "weft_server_serve": ([c_void_p, c_void_p, c_char_p, _DISPATCH, c_void_p, P, E],
                              c_int32),
        "weft_server_local_addr": ([c_void_p, POINTER(_Bytes), E], c_int32),
        "weft_server_shutdown": ([c_void_p, E], c_int32),
        "weft_server_free": ([c_void_p], None),
        "weft_responder_reply": ([c_void_p, c_char_p, c_size_t, E], c_int32),
        "weft_responder_error": ([c_void_p, c_int32, c_char_p, E], c_int32),
        "weft_ctx_get": ([c_void_p, c_int32, c_char_p, POINTER(_Bytes), E], c_int32),
    }
    for name, (args, res) in sig.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


_lib = _load()


def _check(code, err):
    if code != 0:
        message = _lib.weft_error_message(err).decode("utf-8", "replace")
        _lib.weft_error_free(err)
        raise WeftError(code, message)


def _call(fn, *args):
    err = c_void_p()
    _check(fn(*args, byref(err)), err)


def live_handles():
    """Weft objects not yet freed (a leak check for tests)."""
    return _lib.weft_live_handles()


class _Runtime:
    _shared = None

    def __init__(self, workers=0):
        self.handle = c_void_p()
        _call(_lib.weft_runtime_new, workers, byref(self.handle))

    def __del__(self):
        if _lib is not None and self.handle:
            _lib.weft_runtime_free(self.handle)

    @classmethod
    def shared(cls):
        if cls._shared is None:
            cls._shared = _Runtime()
        return cls._shared


class Context:
    """What goes with a call (a timeout, persistent and transient metainfo)
    and what comes back (`backward`, filled in by the call)."""

    def __init__(self, timeout_ms=None, persistent=None, transient=None):
        self.timeout_ms = timeout_ms
        self.persistent = dict(persistent or {})
        self.transient = dict(transient or {})
        self.backward = {}

    def _make(self):
        ctx = c_void_p()
        _call(_lib.weft_ctx_new, byref(ctx))
        try:
            if self.timeout_ms:
                _call(_lib.weft_ctx_set_timeout_ms, ctx, int(self.timeout_ms))
            for scope, kv in ((SCOPE_PERSISTENT, self.persistent),
                              (SCOPE_TRANSIENT, self.transient)):
                for k, v in kv.items():
                    _call(_lib.weft_ctx_set, ctx, scope, k.encode(), v.encode())
        except BaseException:
            _lib.weft_ctx_free(ctx)
            raise
        return ctx

    @staticmethod
    def _read_backward(ctx):
        return Context._read_scope(ctx, SCOPE_BACKWARD)

    @staticmethod
    def _read_scope(ctx, scope):
        n = c_size_t()
        _call(_lib.weft_ctx_count, ctx, scope, byref(n))
        out = {}
        for i in range(n.value):
            k, v = _Bytes(), _Bytes()
            _call(_lib.weft_ctx_entry, ctx, scope, i, byref(k), byref(v))
            out[ctypes.string_at(k.data, k.len).decode()] = ctypes.string_at(v.data, v.len).decode()
            _lib.weft_bytes_free(byref(k))
            _lib.weft_bytes_free(byref(v))
        return out


try:  # Apache Thrift's C extension, when the `thrift` package was built with it
    from thrift.protocol import fastbinary as _fastbinary
    _ACCELERATED = True
except ImportError:
    _fastbinary = None
    _ACCELERATED = False


class _FastIn:
    """What Apache's C decoder reads of a protocol: its transport and
    limits (a whole TBinaryProtocolAccelerated costs more to make than the
    decode of a small struct)."""
    __slots__ = ("trans", "string_length_limit", "container_length_limit")

    def __init__(self, data):
        self.trans = TTransport.TMemoryBuffer(data)
        self.string_length_limit = None
        self.container_length_limit = None


def _factory(protocol, accelerated):
    """The protocol factory Apache's generated structs encode and decode
    with: its C-accelerated one when available and wanted (the bytes are
    the same), else the pure-Python one."""
    if accelerated and _ACCELERATED:
        return (TBinaryProtocol.TBinaryProtocolAcceleratedFactory() if protocol == "binary"
                else TCompactProtocol.TCompactProtocolAcceleratedFactory())
    return (TBinaryProtocol.TBinaryProtocolFactory() if protocol == "binary"
            else TCompactProtocol.TCompactProtocolFactory())


def _endpoints(endpoints):
    """etcd endpoints as the C ABI takes them: one comma-separated string."""
    return (endpoints if isinstance(endpoints, str) else ",".join(endpoints)).encode()


class Client:
    """A Weft client of one service, balanced over `addresses`
    (`"host:port"` or `"unix:/path"`), or over the instances registered in
    etcd at `etcd_endpoints` (a URL, or a list of them) under
    `etcd_service` (default: `service`), followed as they change.

    With `transport="grpc"` (protocol protobuf) calls are gRPC unary calls:
    `call("/package.Service/Method", request, ReplyClass)` with messages of
    protobuf's own generated classes (`grpcio-tools`), the reply decoded
    with `ReplyClass.FromString`; a status other than OK is raised as
    `WeftError` with its code and message.

    `accelerated` (default True) encodes and decodes Thrift structs with
    Apache's C extension (`fastbinary`) when the `thrift` package has it,
    else in pure Python; the bytes are the same.

    `call` does its I/O on the calling thread (`caller_io`, default True):
    each thread that calls gets its own connections for its blocking calls
    (up to 16 threads), so a call costs no hop to one of Weft's threads and
    back; `caller_io=False` shares the client's (see
    `weft_client_options_set_caller_io`). Thread-safe."""

    def __init__(self, addresses=(), service="", transport="ttheader", protocol="binary",
                 timeout_ms=None, max_attempts=None, retry_budget=0.1,
                 connection_mode=None, load_balance=None, runtime=None,
                 etcd_endpoints=None, etcd_service=None, accelerated=True, caller_io=True):
        self._handle, self._queue, self._loop = c_void_p(), None, None
        self._runtime = runtime or _Runtime.shared()
        self._grpc = transport == "grpc"
        if self._grpc and protocol == "binary":
            protocol = "protobuf"
        self._protocol = protocol
        self._factory = _factory(protocol, accelerated)
        # The C extension's own encoder and decoder, called directly.
        self._fast = None
        if accelerated and _ACCELERATED and not self._grpc:
            self._fast = ((_fastbinary.encode_binary, _fastbinary.decode_binary)
                          if protocol == "binary"
                          else (_fastbinary.encode_compact, _fastbinary.decode_compact))
        opts = c_void_p()
        _call(_lib.weft_client_options_new, byref(opts))
        try:
            for a in addresses:
                _call(_lib.weft_client_options_add_address, opts, a.encode())
            if etcd_endpoints is not None:
                _call(_lib.weft_client_options_set_etcd, opts, _endpoints(etcd_endpoints),
                      (etcd_service or service).encode())
            _call(_lib.weft_client_options_set_service, opts, service.encode())
            _call(_lib.weft_client_options_set_codec, opts, _TRANSPORTS[transport],
                  _PROTOCOLS[protocol])
            if timeout_ms is not None:
                _call(_lib.weft_client_options_set_timeout_ms, opts, int(timeout_ms))
            if max_attempts is not None:
                _call(_lib.weft_client_options_set_retries, opts, max_attempts, retry_budget)
            if connection_mode is not None:
                _call(_lib.weft_client_options_set_connection_mode, opts,
                      _MODES[connection_mode])
            if load_balance is not None:
                _call(_lib.weft_client_options_set_load_balance, opts, _LB[load_balance])
            if not caller_io:
                _call(_lib.weft_client_options_set_caller_io, opts, False)
            _call(_lib.weft_client_new, self._runtime.handle, opts, byref(self._handle))
        finally:
            _lib.weft_client_options_free(opts)
        self._pending = {}
        self._tags = itertools.count(1)

    def close(self):
        """Free the client (and its asyncio queue)."""
        if self._queue is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
            _lib.weft_queue_free(self._queue)
            self._queue = None
        if self._handle:
            _lib.weft_client_free(self._handle)
            self._handle = c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if _lib is not None:
            self.close()

    def _encode(self, args):
        if self._grpc:
            return args.SerializeToString()
        if self._fast is not None and args.thrift_spec is not None:
            return self._fast[0](args, [args.__class__, args.thrift_spec])
        buf = TTransport.TMemoryBuffer()
        args.write(self._factory.getProtocol(buf))
        return buf.getvalue()

    def _decode(self, data, result_cls):
        if self._grpc:
            return result_cls.FromString(data)
        result = result_cls()
        if self._fast is not None and result_cls.thrift_spec is not None:
            self._fast[1](result, _FastIn(data), [result_cls, result_cls.thrift_spec])
        else:
            result.read(self._factory.getProtocol(TTransport.TMemoryBuffer(data)))
        # A void method's result struct has no fields at all.
        spec = result_cls.thrift_spec or (None,)
        for field in spec[1:]:
            if field is not None:
                value = getattr(result, field[2], None)
                if value is not None:
                    raise value
        if spec[0] is None:
            return None
        if result.success is None:
            raise TApplicationException(TApplicationException.MISSING_RESULT,
                                        "the result holds no success value")
        return result.success

    def call(self, method, args, result_cls, ctx=None):
        """Call `method` with the generated args struct and return the
        success value of the generated result class (raising its declared
        exception, or WeftError). Blocks the calling thread (and releases
        the GIL meanwhile)."""
        data = self._encode(args)
        reply, err = _Reply(), c_void_p()
        c = ctx._make() if ctx is not None else None
        # Spelled out rather than through `_call`: this is the path whose
        # every Python step shows in a call's cost.
        try:
            code = _lib.weft_client_call(self._handle, method.encode(), data, len(data), c,
                                         byref(reply), byref(err))
            if code:
                _check(code, err)
            if c is not None:
                ctx.backward = Context._read_backward(c)
            result = reply.result
            raw = ctypes.string_at(result.data, result.len)
        finally:
            _lib.weft_reply_free(byref(reply))
            if c is not None:
                _lib.weft_ctx_free(c)
        return self._decode(raw, result_cls)

    # ===== asyncio =====

    def _ensure_queue(self):
        if self._queue is None:
            self._queue = c_void_p()
            _call(_lib.weft_queue_new, byref(self._queue))
            fd = c_int()
            _call(_lib.weft_queue_fd, self._queue, byref(fd))
            self._fd = fd.value
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._fd, self._drain)

    def _drain(self):
        batch = (_Completion * 64)()
        n = c_size_t()
        while True:
            _call(_lib.weft_queue_take, self._queue, batch, 64, byref(n))
            for i in range(n.value):
                c = batch[i]
                fut, result_cls, ctx = self._pending.pop(c.tag)
                try:
                    if c.code != 0:
                        msg = _lib.weft_error_message(c.error).decode("utf-8", "replace")
                        raise WeftError(c.code, msg)
                    if ctx is not None:
                        ctx.backward = Context._read_backward(c.ctx)
                    raw = ctypes.string_at(c.reply.result.data, c.reply.result.len)
                    value = self._decode(raw, result_cls)
                except BaseException as e:
                    if not fut.done():
                        fut.set_exception(e)
                else:
                    if not fut.done():
                        fut.set_result(value)
                finally:
                    _lib.weft_completion_release(byref(batch[i]))
            if n.value < 64:
                return

    async def call_async(self, method, args, result_cls, ctx=None):
        """`call` for asyncio: many calls in flight on one event loop, their
        completions read from one file descriptor."""
        self._ensure_queue()
        data = self._encode(args)
        tag = next(self._tags)
        fut = self._loop.create_future()
        self._pending[tag] = (fut, result_cls, ctx)
        c = ctx._make() if ctx is not None else None
        try:
            _call(_lib.weft_client_call_queued, self._handle, method.encode(), data, len(data),
                  c, self._queue, tag)
        except BaseException:
            self._pending.pop(tag, None)
            raise
        finally:
            if c is not None:
                _lib.weft_ctx_free(c)
        return await fut


class _HandlerCallDetails:
    """What grpcio's generic handlers look a method up by."""
    __slots__ = ("method", "invocation_metadata")

    def __init__(self, method, invocation_metadata):
        self.method = method
        self.invocation_metadata = invocation_metadata


class _Abort(Exception):
    def __init__(self, code, details):
        super().__init__(details)
        self.code, self.details = code, details


class ServicerContext:
    """The `context` a gRPC servicer method gets when served by Weft: the
    parts of grpcio's `ServicerContext` that a unary call has. Valid only
    while the method runs."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._code, self._details = None, ""
        self._metadata = None

    def invocation_metadata(self):
        """The caller's metadata as Weft received it: plain entries (Weft's
        upstream metainfo) and `rpc-persist-KEY` for persistent metainfo."""
        if self._metadata is None:
            md = list(Context._read_scope(self._ctx, SCOPE_UPSTREAM).items())
            md += [("rpc-persist-" + k, v)
                   for k, v in Context._read_scope(self._ctx, SCOPE_PERSISTENT).items()]
            self._metadata = tuple(md)
        return self._metadata

    def persistent(self):
        """The caller's persistent metainfo, a dict."""
        return Context._read_scope(self._ctx, SCOPE_PERSISTENT)

    def time_remaining(self):
        """Seconds left before the caller's deadline, or None without one."""
        ms = c_int64()
        _call(_lib.weft_ctx_remaining_ms, self._ctx, byref(ms))
        return None if ms.value < 0 else ms.value / 1000.0

    def send_initial_metadata(self, metadata):
        """Send (key, value) pairs back with the reply's headers (Weft's
        backward metainfo)."""
        for k, v in metadata:
            _call(_lib.weft_ctx_set, self._ctx, SCOPE_BACKWARD, k.encode(), v.encode())

    def set_code(self, code):
        """The status to answer with when the method returns (a
        `grpc.StatusCode`)."""
        self._code = code

    def set_details(self, details):
        """The status message to go with `set_code`."""
        self._details = details

    def abort(self, code, details):
        """End the call now with `code` (not OK) and `details`."""
        raise _Abort(code, details)

    def is_active(self):
        """True: the call is answered when the method returns."""
        return True


def _status_code(code):
    """A `grpc.StatusCode` (or Weft's number) as Weft's number."""
    if isinstance(code, int):
        return code
    return _CODE_OF.get(getattr(code, "name", ""), 2)


class Server:
    """Serves an Apache-generated `Processor` (e.g. `Echo.Processor(handler)`,
    `handler` a plain class with one method per IDL method) on `address`
    through Weft: every Thrift transport and protocol on one port. The
    handler runs on Weft's threads, one call at a time per thread (the GIL
    serialises Python anyway). Declared exceptions raised by the handler
    travel as the IDL defines; anything else as an internal error.

    With `grpc=True` the same port serves gRPC too, to servicer classes
    added as grpcio-tools' generated code adds them:
    `echo_pb2_grpc.add_EchoServicer_to_server(MyServicer(), server)` (the
    server has grpcio's `add_generic_rpc_handlers` and
    `add_registered_method_handlers`). Unary methods are served: each gets
    the request message and a `ServicerContext`; its return value is the
    reply; `context.abort(code, details)` or `set_code` answer a status,
    and any other exception is UNKNOWN, as in grpcio. Unknown methods and
    streaming ones are UNIMPLEMENTED. `grpc_services` (names such as
    `"pkg.Service"`) keeps calls to other services from reaching Python at
    all; `grpc_max_message` bounds a request message (default 4 MiB). The
    `grpc` package is needed only for servicers generated by grpcio-tools.
    `processor` may be None for a gRPC-only server (Thrift calls are then
    UNIMPLEMENTED).

    With `etcd_endpoints` (a URL, or a list of them) and `etcd_service`, the
    server registers in etcd once it listens (as `advertise`, default the
    bound address, with `weight`) and deregisters first thing in
    `shutdown`, `deregister_grace_ms` (default 1000) before it drains."""

    def __init__(self, processor, address="127.0.0.1:0", runtime=None,
                 etcd_endpoints=None, etcd_service=None, weight=0, advertise=None,
                 deregister_grace_ms=None, grpc=False, grpc_services=(),
                 grpc_max_message=None):
        if processor is None and not grpc:
            raise ValueError("a Server needs a Thrift processor or grpc=True")
        self._runtime = runtime or _Runtime.shared()
        self._processor = processor
        # gRPC method path -> grpcio RpcMethodHandler; generic handlers.
        self._grpc_methods, self._grpc_generic = {}, []
        # Kept referenced: the C side calls it until shutdown.
        self._dispatch = _DISPATCH(self._on_call)
        self._handle = c_void_p()
        opts = c_void_p()
        _call(_lib.weft_server_options_new, byref(opts))
        try:
            if etcd_endpoints is not None:
                _call(_lib.weft_server_options_set_etcd, opts, _endpoints(etcd_endpoints),
                      (etcd_service or "").encode(), weight)
                if advertise is not None:
                    _call(_lib.weft_server_options_set_advertise, opts, advertise.encode())
                if deregister_grace_ms is not None:
                    _call(_lib.weft_server_options_set_deregister_grace_ms, opts,
                          int(deregister_grace_ms))
            if grpc or grpc_services:
                _call(_lib.weft_server_options_set_grpc, opts, True)
                for name in grpc_services:
                    _call(_lib.weft_server_options_add_grpc_service, opts, name.encode())
                if grpc_max_message is not None:
                    _call(_lib.weft_server_options_set_grpc_max_message, opts,
                          int(grpc_max_message))
            _call(_lib.weft_server_serve, self._runtime.handle, opts, address.encode(),
                  self._dispatch, None, byref(self._handle))
        finally:
            _lib.weft_server_options_free(opts)
        addr = _Bytes()
        _call(_lib.weft_server_local_addr, self._handle, byref(addr))
        self.address = ctypes.string_at(addr.data, addr.len).decode()
        _lib.weft_bytes_free(byref(addr))

    # ===== gRPC, as grpcio's server registers servicers =====

    def add_registered_method_handlers(self, service, method_handlers):
        """Serve `method_handlers` (method name -> grpcio RpcMethodHandler)
        of `service`, as grpcio-tools' `add_XServicer_to_server` does."""
        for name, handler in method_handlers.items():
            self._grpc_methods[f"/{service}/{name}"] = handler

    def add_generic_rpc_handlers(self, generic_handlers):
        """Add grpcio GenericRpcHandlers, asked in order for a method the
        registered handlers do not have."""
        self._grpc_generic.extend(generic_handlers)

    def _grpc_handler(self, path, ctx):
        handler = self._grpc_methods.get(path)
        if handler is None and self._grpc_generic:
            details = _HandlerCallDetails(path, ctx.invocation_metadata())
            for g in self._grpc_generic:
                handler = g.service(details)
                if handler is not None:
                    break
        return handler

    def _on_grpc(self, r, responder):
        path = ctypes.string_at(r.method, r.method_len).decode()
        ctx = ServicerContext(r.ctx)
        handler = self._grpc_handler(path, ctx)
        if handler is None:
            _lib.weft_responder_error(responder, 12, f"Method not found: {path}".encode(), None)
            return
        if handler.request_streaming or handler.response_streaming:
            _lib.weft_responder_error(
                responder, 12, f"{path} streams: only unary methods are served".encode(), None)
            return
        data = ctypes.string_at(r.args, r.args_len)
        try:
            req = handler.request_deserializer(data) if handler.request_deserializer else data
        except Exception as e:
            _lib.weft_responder_error(responder, 13,
                                      f"decoding the request of {path}: {e!r}".encode(), None)
            return
        try:
            resp = handler.unary_unary(req, ctx)
        except _Abort as a:
            _lib.weft_responder_error(responder, _status_code(a.code),
                                      (a.details or "").encode(), None)
            return
        except Exception as e:
            if ctx._code is not None and _status_code(ctx._code) != 0:
                _lib.weft_responder_error(responder, _status_code(ctx._code),
                                          (ctx._details or "").encode(), None)
            else:
                _lib.weft_responder_error(
                    responder, 2, f"Exception calling application: {e}".encode(), None)
            return
        if ctx._code is not None and _status_code(ctx._code) != 0:
            _lib.weft_responder_error(responder, _status_code(ctx._code),
                                      (ctx._details or "").encode(), None)
            return
        out = handler.response_serializer(resp) if handler.response_serializer else resp
        _lib.weft_responder_reply(responder, out, len(out), None)

    def _on_call(self, _user, request, responder):
        try:
            r = request.contents
            if r.protocol == _PROTOBUF:
                self._on_grpc(r, responder)
                return
            if self._processor is None:
                _lib.weft_responder_error(responder, 12, b"this server serves gRPC only", None)
                return
            method = ctypes.string_at(r.method, r.method_len).decode()
            args = ctypes.string_at(r.args, r.args_len)
            factory = _factory("binary" if r.protocol == 0 else "compact", True)
            # Apache's processor reads and writes whole messages: give it an
            # envelope around the args, and take the result out of its own.
            inbuf = TTransport.TMemoryBuffer()
            iprot = factory.getProtocol(inbuf)
            iprot.writeMessageBegin(method, TMessageType.CALL, 0)
            inbuf.write(args)
            inbuf = TTransport.TMemoryBuffer(inbuf.getvalue())
            outbuf = TTransport.TMemoryBuffer()
            self._processor.process(factory.getProtocol(inbuf), factory.getProtocol(outbuf))
            out = TTransport.TMemoryBuffer(outbuf.getvalue())
            oprot = factory.getProtocol(out)
            _name, kind, _seq = oprot.readMessageBegin()
            if kind == TMessageType.EXCEPTION:
                e = TApplicationException()
                e.read(oprot)
                code = 12 if e.type == TApplicationException.UNKNOWN_METHOD else 13
                _lib.weft_responder_error(responder, code, (e.message or "").encode(), None)
                return
            rest = out.read(len(outbuf.getvalue()))
            _lib.weft_responder_reply(responder, rest, len(rest), None)
        except BaseException as e:  # never let Python unwind into C
            _lib.weft_responder_error(responder, 13, f"python handler: {e!r}".encode(), None)

    def shutdown(self):
        """Stop gracefully (calls in flight are answered) and free the server."""
        if self._handle:
            _call(_lib.weft_server_shutdown, self._handle)
            _lib.weft_server_free(self._handle)
            self._handle = c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
