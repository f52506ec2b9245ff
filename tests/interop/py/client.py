"""Apache Thrift's Python client runs the Echo battery against a server.

Exits 0 when every returned value matched exactly; prints each check.
"""
import socket

import common

common.load_generated()
a = common.args()

from thrift.Thrift import TApplicationException  # noqa: E402
from thrift.transport import TSocket  # noqa: E402
from weft_echo import Echo, ttypes  # noqa: E402

tf, pf = common.factories(a)
sock = TSocket.TSocket("127.0.0.1", a.port)
sock.setTimeout(20000)
transport = tf.getTransport(sock)
protocol = pf.getProtocol(transport)
if a.service:
    from thrift.protocol.TMultiplexedProtocol import TMultiplexedProtocol
    protocol = TMultiplexedProtocol(protocol, a.service)
client = Echo.Client(protocol)
transport.open()


def check(name, got, want):
    if got != want:
        raise SystemExit(f"FAIL {name}: got {str(got)[:300]}, want {str(want)[:300]}")
    print(f"ok {name}", flush=True)


p = common.sample_payload(ttypes, 1 << 20)
check("echo", client.echo(p), p)
small = ttypes.Payload(text="", blob=b"", tags=[], scores={}, labels=set())
check("echo-empty", client.echo(small), small)
check("add", client.add(1 << 40, -5), (1 << 40) - 5)
try:
    client.fail(7, "boom")
    raise SystemExit("FAIL fail: no exception")
except ttypes.EchoError as e:
    check("fail-declared", (e.code, e.message), (7, "boom"))
try:
    client.fail(-1, "undeclared")
    raise SystemExit("FAIL fail: no application exception")
except TApplicationException as e:
    check("fail-undeclared", e.type, TApplicationException.INTERNAL_ERROR)
check("ping", client.ping(), None)
client.notify("from python")
check("slow", client.slow(small, 10), small)
# The connection is still in sync after all of the above.
check("add-again", client.add(2, 3), 5)
transport.close()
print("python client: all checks passed", flush=True)
