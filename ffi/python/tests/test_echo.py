"""The Python binding against a Weft Rust echo server (tests/interop's
Echo), with code from Apache Thrift's `thrift --gen py`.

Needs WEFT_ECHO_ADDR (the server's address); `cargo test -p weft-ffi --test
python` starts the server and runs this file. WEFT_LIB may name the library
to load (otherwise the installed package's)."""
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

IDL = Path(__file__).resolve().parents[3] / "tests" / "interop" / "idl" / "echo.thrift"
_gen = tempfile.mkdtemp(prefix="weft-ffi-py-")
subprocess.run(["thrift", "--gen", "py", "-out", _gen, str(IDL)], check=True)
sys.path.insert(0, _gen)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weft_echo import Echo, ttypes  # noqa: E402

import weft_ffi  # noqa: E402
from weft_ffi import Client, Context, Server, WeftError  # noqa: E402

ADDR = os.environ["WEFT_ECHO_ADDR"]


def payload():
    return ttypes.Payload(
        text="hello, wörld", blob=bytes(range(256)) * 4, count=2**62, ratio=math.pi,
        tags=["a", "b"], scores={"x": 1, "y": -2},
        inner=ttypes.Inner(name="in", values=[1, 2, 3]),
        children=[ttypes.Inner(name="c", values=[])], labels={"l1", "l2"}, flag=True)


class Echoes(unittest.TestCase):
    def test_every_codec_round_trips_apache_structs(self):
        for transport in ("ttheader", "framed", "buffered", "theader"):
            for protocol, accelerated in (("binary", True), ("binary", False),
                                          ("compact", True), ("compact", False)):
                with Client([ADDR], service="Echo", transport=transport,
                            protocol=protocol, accelerated=accelerated) as c:
                    got = c.call("echo", Echo.echo_args(payload=payload()), Echo.echo_result)
                    self.assertEqual(got, payload(), f"{transport}/{protocol}/{accelerated}")
                    self.assertEqual(c.call("add", Echo.add_args(a=2**40, b=-1),
                                            Echo.add_result), 2**40 - 1)
                    self.assertIsNone(c.call("ping", Echo.ping_args(), Echo.ping_result))

    def test_a_declared_exception_is_raised_as_its_class(self):
        with Client([ADDR], service="Echo") as c:
            with self.assertRaises(ttypes.EchoError) as e:
                c.call("fail", Echo.fail_args(code=7, message="sold out"), Echo.fail_result)
            self.assertEqual((e.exception.code, e.exception.message), (7, "sold out"))
            with self.assertRaises(WeftError) as w:
                c.call("fail", Echo.fail_args(code=-1, message="undeclared"), Echo.fail_result)
            self.assertEqual(w.exception.name, "INTERNAL")
            self.assertIn("undeclared", w.exception.message)

    def test_metainfo_goes_out_and_comes_back(self):
        with Client([ADDR], service="Echo") as c:
            ctx = Context(persistent={"tenant": "blue"}, transient={"hop": "one"})
            self.assertEqual(c.call("metainfo", Echo.metainfo_args(key="tenant"),
                                    Echo.metainfo_result, ctx), "blue")
            self.assertEqual(ctx.backward, {"echo-tenant": "blue"})
            self.assertEqual(c.call("metainfo", Echo.metainfo_args(key="hop"),
                                    Echo.metainfo_result, ctx), "one")
            self.assertEqual(ctx.backward, {"echo-hop": "one"})

    def test_a_deadline_cancels(self):
        with Client([ADDR], service="Echo") as c:
            t0 = time.monotonic()
            with self.assertRaises(WeftError) as w:
                c.call("slow", Echo.slow_args(payload=ttypes.Payload(), millis=3000),
                       Echo.slow_result, Context(timeout_ms=100))
            self.assertEqual(w.exception.name, "DEADLINE_EXCEEDED")
            self.assertLess(time.monotonic() - t0, 2.0)

    def test_asyncio_with_a_thousand_concurrent_calls(self):
        async def main():
            with Client([ADDR], service="Echo") as c:
                calls = [c.call_async("add", Echo.add_args(a=i, b=1), Echo.add_result)
                         for i in range(1000)]
                got = await asyncio.gather(*calls)
                self.assertEqual(got, [i + 1 for i in range(1000)])
                ctx = Context(persistent={"k": "v"})
                self.assertEqual(await c.call_async("metainfo", Echo.metainfo_args(key="k"),
                                                    Echo.metainfo_result, ctx), "v")
                self.assertEqual(ctx.backward, {"echo-k": "v"})
                with self.assertRaises(ttypes.EchoError):
                    await c.call_async("fail", Echo.fail_args(code=1, message="m"),
                                       Echo.fail_result)
        asyncio.run(main())

    def test_errors_are_weft_errors(self):
        with self.assertRaises(WeftError) as w:
            Client(["not an address"])
        self.assertEqual(w.exception.name, "INVALID_ARGUMENT")
        with Client(["127.0.0.1:1"], max_attempts=1) as c:
            with self.assertRaises(WeftError) as w:
                c.call("add", Echo.add_args(a=1, b=2), Echo.add_result)
            self.assertEqual(w.exception.name, "UNAVAILABLE")


class Handler:
    """A plain Python handler of Echo, as Apache's generated Processor calls it."""

    def echo(self, payload):
        return payload

    def add(self, a, b):
        return a + b

    def fail(self, code, message):
        if code < 0:
            raise RuntimeError(message)
        raise ttypes.EchoError(code=code, message=message)

    def ping(self):
        pass


class PythonServer(unittest.TestCase):
    def test_a_python_handler_behind_the_shim(self):
        with Server(Echo.Processor(Handler())) as server:
            for transport, protocol in (("ttheader", "binary"), ("framed", "compact"),
                                        ("buffered", "binary")):
                with Client([server.address], service="Echo", transport=transport,
                            protocol=protocol) as c:
                    self.assertEqual(c.call("echo", Echo.echo_args(payload=payload()),
                                            Echo.echo_result), payload())
                    self.assertEqual(c.call("add", Echo.add_args(a=1, b=2), Echo.add_result), 3)
                    self.assertIsNone(c.call("ping", Echo.ping_args(), Echo.ping_result))
                    with self.assertRaises(ttypes.EchoError) as e:
                        c.call("fail", Echo.fail_args(code=5, message="no"), Echo.fail_result)
                    self.assertEqual(e.exception.code, 5)
                    with self.assertRaises(WeftError) as w:
                        c.call("fail", Echo.fail_args(code=-1, message="boom"), Echo.fail_result)
                    self.assertEqual(w.exception.name, "INTERNAL")
                    # A method the handler lacks: Apache's processor answers
                    # an internal error; one the IDL lacks: unknown method.
                    with self.assertRaises(WeftError) as w:
                        c.call("slow", Echo.slow_args(payload=payload(), millis=1),
                               Echo.slow_result)
                    self.assertEqual(w.exception.name, "INTERNAL")
                    with self.assertRaises(WeftError) as w:
                        c.call("nosuch", Echo.ping_args(), Echo.ping_result)
                    self.assertEqual(w.exception.name, "UNIMPLEMENTED")
            # Apache's own Python client stack against it, too.
            from thrift.protocol import TBinaryProtocol, TCompactProtocol
            from thrift.transport import TSocket, TTransport
            host, port = server.address.rsplit(":", 1)
            for wrap, proto in ((TTransport.TFramedTransport, TBinaryProtocol.TBinaryProtocol),
                                (TTransport.TBufferedTransport, TCompactProtocol.TCompactProtocol)):
                t = wrap(TSocket.TSocket(host, int(port)))
                t.open()
                try:
                    apache = Echo.Client(proto(t))
                    self.assertEqual(apache.add(20, 22), 42)
                    self.assertEqual(apache.echo(payload()), payload())
                    with self.assertRaises(ttypes.EchoError):
                        apache.fail(3, "x")
                finally:
                    t.close()


if __name__ == "__main__":
    import gc
    result = unittest.main(exit=False).result
    gc.collect()
    # Everything the tests made is freed but the shared runtime.
    live = weft_ffi.live_handles()
    if live > 1:
        print(f"{live} Weft objects left alive", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if result.wasSuccessful() else 1)
