"""The Python hop of the mesh test (ffi/tests/mesh.rs): the ffi/python
binding calls a Weft Rust service (WEFT_RELAY_ADDR) that calls a Go server
behind the shim, with a deadline and persistent metainfo that must cross
all three hops. WEFT_LIB names the library to load."""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IDL = Path(__file__).resolve().parents[2] / "tests" / "interop" / "idl" / "echo.thrift"
_gen = tempfile.mkdtemp(prefix="weft-ffi-mesh-")
subprocess.run(["thrift", "--gen", "py", "-out", _gen, str(IDL)], check=True)
sys.path.insert(0, _gen)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from weft_echo import Echo, ttypes  # noqa: E402

import weft_ffi  # noqa: E402
from weft_ffi import Client, Context, WeftError  # noqa: E402

TIMEOUT_MS = 2000

# The Go server checks its deadline against the Python client's, which is
# TIMEOUT_MS from the moment weft_client_call starts. So stamp that moment,
# just before the library is entered, into the call's persistent metainfo:
# a bound, in whole milliseconds rounded down, at most microseconds before
# the real deadline.
_weft_client_call = weft_ffi._lib.weft_client_call


def _stamped_call(client, method, data, n, ctx, *rest):
    if ctx is not None:
        bound = int((time.time() + TIMEOUT_MS / 1000) * 1000)
        weft_ffi._call(weft_ffi._lib.weft_ctx_set, ctx, weft_ffi.SCOPE_PERSISTENT,
                       b"mesh-deadline-unix-ms", str(bound).encode())
    return _weft_client_call(client, method, data, n, ctx, *rest)


weft_ffi._lib.weft_client_call = _stamped_call

with Client([os.environ["WEFT_RELAY_ADDR"]], service="Echo") as c:
    ctx = Context(timeout_ms=TIMEOUT_MS, persistent={"mesh-trace": "py-trace-42"},
                  transient={"mesh-hop": "python"})
    got = c.call("metainfo", Echo.metainfo_args(key="mesh-trace"), Echo.metainfo_result, ctx)
    after = time.time()
    assert got == "py-trace-42", got
    assert ctx.backward.get("echo-mesh-trace") == "py-trace-42", ctx.backward
    go_deadline = int(ctx.backward["go-deadline-unix-ms"])
    # The call started before `after`, so its deadline is before this.
    assert go_deadline <= int((after + TIMEOUT_MS / 1000) * 1000), (go_deadline, after)
    print(f"mesh ok: value {got!r}, Go deadline {go_deadline}", file=sys.stderr)

    # The deadline ends a slow call at the Python client, through both hops.
    start = time.time()
    try:
        c.call("slow", Echo.slow_args(payload=ttypes.Payload(text="slow"), millis=5000), Echo.slow_result,
               Context(timeout_ms=300))
        raise AssertionError("a 5 s call with a 300 ms deadline succeeded")
    except WeftError as e:
        assert e.name == "DEADLINE_EXCEEDED", e.name
    took = time.time() - start
    assert took < 2.0, took
    print(f"mesh deadline ok: DEADLINE_EXCEEDED after {took:.3f}s", file=sys.stderr)
