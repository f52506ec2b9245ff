"""etcd through the Python binding: a Python server behind the shim
registers in a real etcd as it serves, Python clients find it (and a Weft
Rust server the test registered) through etcd alone, and its key is gone
once it has shut down.

Needs WEFT_ETCD_URL (etcd's client URL) and WEFT_ETCD_RUST_SERVICE (the
service the Rust server registered as); `cargo test -p weft-ffi --test
python` starts both and runs this file. The keys are read through etcd's
JSON gateway (`/v3/kv/range`), so no Python etcd library is needed."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request
from pathlib import Path

IDL = Path(__file__).resolve().parents[3] / "tests" / "interop" / "idl" / "echo.thrift"
_gen = tempfile.mkdtemp(prefix="weft-ffi-py-etcd-")
subprocess.run(["thrift", "--gen", "py", "-out", _gen, str(IDL)], check=True)
sys.path.insert(0, _gen)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weft_echo import Echo  # noqa: E402

import weft_ffi  # noqa: E402
from weft_ffi import Client, Server, WeftError  # noqa: E402

ETCD = os.environ["WEFT_ETCD_URL"]
RUST_SERVICE = os.environ["WEFT_ETCD_RUST_SERVICE"]


def keys(service):
    """The keys registered under `service`, with their JSON values."""
    prefix = f"/weft/services/{service}/".encode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    body = json.dumps({"key": base64.b64encode(prefix).decode(),
                       "range_end": base64.b64encode(end).decode()}).encode()
    req = urllib.request.Request(f"{ETCD}/v3/kv/range", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        kvs = json.load(r).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"]))
            for kv in kvs}


class Handler:
    def add(self, a, b):
        return a + b


class Etcd(unittest.TestCase):
    def test_a_python_server_registers_and_python_clients_find_it(self):
        server = Server(Echo.Processor(Handler()), etcd_endpoints=[ETCD],
                        etcd_service="EchoPy", weight=7, deregister_grace_ms=0)
        try:
            key = f"/weft/services/EchoPy/{server.address}"
            registered = keys("EchoPy")
            self.assertEqual(list(registered), [key])
            self.assertEqual(registered[key]["weight"], 7)
            with Client(service="Echo", etcd_endpoints=ETCD, etcd_service="EchoPy") as c:
                for i in range(10):
                    self.assertEqual(c.call("add", Echo.add_args(a=i, b=1), Echo.add_result),
                                     i + 1)
            with Client(service="Echo", etcd_endpoints=[ETCD],
                        etcd_service=RUST_SERVICE) as c:
                self.assertEqual(c.call("add", Echo.add_args(a=2**33, b=1), Echo.add_result),
                                 2**33 + 1)
        finally:
            server.shutdown()
        # Deregistered by the shutdown itself, not by a lease expiring.
        self.assertEqual(keys("EchoPy"), {})

    def test_bad_etcd_options_are_weft_errors(self):
        with self.assertRaises(WeftError) as w:
            Client(etcd_endpoints="127.0.0.1:2379", etcd_service="Echo")
        self.assertEqual(w.exception.name, "INVALID_ARGUMENT")
        with self.assertRaises(WeftError) as w:
            Client(["127.0.0.1:1"], etcd_endpoints=ETCD, etcd_service="Echo")
        self.assertEqual(w.exception.name, "INVALID_ARGUMENT")
        with self.assertRaises(WeftError) as w:
            Server(Echo.Processor(Handler()), etcd_endpoints=ETCD, etcd_service="")
        self.assertEqual(w.exception.name, "INVALID_ARGUMENT")


if __name__ == "__main__":
    import gc
    result = unittest.main(exit=False).result
    gc.collect()
    live = weft_ffi.live_handles()
    if live > 1:
        print(f"{live} Weft objects left alive", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if result.wasSuccessful() else 1)
