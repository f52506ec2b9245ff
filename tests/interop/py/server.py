"""Apache Thrift's Python server for the Echo service."""
import time

import common

common.load_generated()
a = common.args()

from thrift.server import TServer  # noqa: E402
from thrift.transport import TSocket  # noqa: E402
from weft_echo import Echo, ttypes  # noqa: E402


class Handler:
    def echo(self, payload):
        return payload

    def fail(self, code, message):
        if code < 0:
            raise RuntimeError(message)
        raise ttypes.EchoError(code=code, message=message)

    def add(self, a, b):
        return a + b

    def metainfo(self, key):
        return ""

    def ping(self):
        return None

    def notify(self, text):
        print(f"notified {text}", flush=True)

    def slow(self, payload, millis):
        time.sleep(millis / 1000.0)
        return payload


tf, pf = common.factories(a)
server = TServer.TThreadedServer(
    Echo.Processor(Handler()), TSocket.TServerSocket("127.0.0.1", a.port), tf, pf,
    daemon=True)
print("serving", flush=True)
server.serve()
