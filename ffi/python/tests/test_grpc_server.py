"""A Python servicer class served as gRPC through the shim (`Server(...,
grpc=True)`, registered with grpcio-tools' own `add_EchoServicer_to_server`),
called by a real grpcio client and by the binding's own gRPC client.

`cargo test -p weft-ffi --test python` runs this file."""
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

IDL = Path(__file__).resolve().parents[3] / "tests" / "interop" / "idl"
_gen = tempfile.mkdtemp(prefix="weft-ffi-py-grpc-server-")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{IDL}", f"--python_out={_gen}",
                f"--grpc_python_out={_gen}", str(IDL / "echo.proto")], check=True)
sys.path.insert(0, _gen)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402

import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402

import weft_ffi  # noqa: E402
from weft_ffi import Client, Context, Server, WeftError  # noqa: E402

UNARY = "/weft.interop.echo.Echo/Unary"


class EchoServicer(echo_pb2_grpc.EchoServicer):
    """Unary echoes and reports what it saw; `code` answers that status
    through `context.abort`, message "raise" raises, "set_code" answers
    through `set_code`/`set_details`."""

    def Unary(self, request, context):
        if request.code:
            context.abort(_status(request.code), f"echo status: {request.message}")
        if request.message == "raise":
            raise RuntimeError("boom")
        if request.message == "set_code":
            context.set_code(grpc.StatusCode.PERMISSION_DENIED)
            context.set_details("not you")
            return echo_pb2.EchoReply()
        md = dict(context.invocation_metadata())
        seen = {k: v for k, v in md.items() if k.startswith("rpc-persist-") or k.startswith("x-")}
        remaining = context.time_remaining()
        context.send_initial_metadata([("served-by", "python")])
        return echo_pb2.EchoReply(message=request.message, seen=seen,
                                  timeout_ms=int(remaining * 1000) if remaining else 0)


def _status(code):
    return next(s for s in grpc.StatusCode if s.value[0] == code)


class GrpcServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servicer = EchoServicer()
        cls.server = Server(None, grpc=True, grpc_max_message=64 * 1024)
        echo_pb2_grpc.add_EchoServicer_to_server(cls.servicer, cls.server)
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = echo_pb2_grpc.EchoStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.shutdown()

    def status(self, f, *args, **kw):
        with self.assertRaises(grpc.RpcError) as e:
            f(*args, **kw)
        return e.exception.code(), e.exception.details()

    def test_a_grpcio_client_calls_the_servicer(self):
        reply, call = self.stub.Unary.with_call(
            echo_pb2.EchoRequest(message="hello, wörld"), timeout=2,
            metadata=[("rpc-persist-tenant", "blue"), ("x-plain", "p")])
        self.assertEqual(reply.message, "hello, wörld")
        self.assertEqual(reply.seen["rpc-persist-tenant"], "blue")
        self.assertEqual(reply.seen["x-plain"], "p")
        self.assertTrue(0 < reply.timeout_ms <= 2000, reply.timeout_ms)
        self.assertEqual(dict(call.initial_metadata()).get("served-by"), "python")

    def test_statuses_travel_as_grpcio_sends_them(self):
        code, details = self.status(self.stub.Unary,
                                    echo_pb2.EchoRequest(message="gone", code=5), timeout=5)
        self.assertEqual((code, details), (grpc.StatusCode.NOT_FOUND, "echo status: gone"))
        code, details = self.status(self.stub.Unary, echo_pb2.EchoRequest(message="raise"),
                                    timeout=5)
        self.assertEqual(code, grpc.StatusCode.UNKNOWN)
        self.assertIn("boom", details)
        code, details = self.status(self.stub.Unary, echo_pb2.EchoRequest(message="set_code"),
                                    timeout=5)
        self.assertEqual((code, details), (grpc.StatusCode.PERMISSION_DENIED, "not you"))

    def test_unknown_streaming_and_oversize_calls_are_refused(self):
        raw = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
        for path in ("/weft.interop.echo.Echo/Nope", "/other.Service/Unary"):
            code, _ = self.status(self.channel.unary_unary(path, **raw), b"", timeout=5)
            self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED, path)
        code, _ = self.status(
            lambda: list(self.stub.ServerStream(echo_pb2.EchoRequest(count=2), timeout=5)))
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        code, _ = self.status(self.stub.Unary, echo_pb2.EchoRequest(message="x" * 100_000),
                              timeout=5)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        # Served on.
        self.assertEqual(self.stub.Unary(echo_pb2.EchoRequest(message="ok"), timeout=5).message,
                         "ok")

    def test_many_concurrent_grpcio_calls(self):
        futures = [self.stub.Unary.future(echo_pb2.EchoRequest(message=f"m{i}"), timeout=10)
                   for i in range(300)]
        self.assertEqual([f.result().message for f in futures], [f"m{i}" for i in range(300)])

    def test_the_bindings_own_grpc_client_calls_it(self):
        with Client([self.server.address], transport="grpc") as c:
            ctx = Context(timeout_ms=2000, persistent={"tenant": "acme"})
            reply = c.call(UNARY, echo_pb2.EchoRequest(message="via weft"), echo_pb2.EchoReply,
                           ctx)
            self.assertEqual(reply.message, "via weft")
            self.assertEqual(reply.seen["rpc-persist-tenant"], "acme")
            self.assertEqual(ctx.backward.get("served-by"), "python")
            with self.assertRaises(WeftError) as w:
                c.call(UNARY, echo_pb2.EchoRequest(message="gone", code=7), echo_pb2.EchoReply)
            self.assertEqual(w.exception.name, "PERMISSION_DENIED")


if __name__ == "__main__":
    import gc
    result = unittest.main(exit=False).result
    gc.collect()
    live = weft_ffi.live_handles()
    # The shared runtime stays alive for the process.
    if live > 1:
        print(f"{live} Weft objects left alive", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
