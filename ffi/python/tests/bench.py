"""The shim from Python beside Apache Thrift's own Python client, against
the same Weft Rust echo server, in one run: sequential blocking calls
(add, and echo of a ~1 KiB struct) and, for the shim, asyncio with many
calls in flight.

`WEFT_FFI_BENCH=1 cargo test --release -p weft-ffi --test python
python_bench -- --nocapture` starts the server and runs this with
WEFT_ECHO_ADDR; WEFT_FFI_BENCH_D sets the seconds per cell (default 3)."""
import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IDL = Path(__file__).resolve().parents[3] / "tests" / "interop" / "idl" / "echo.thrift"
_gen = tempfile.mkdtemp(prefix="weft-ffi-py-bench-")
subprocess.run(["thrift", "--gen", "py", "-out", _gen, str(IDL)], check=True)
sys.path.insert(0, _gen)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.Thrift import TMessageType  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402
from weft_echo import Echo, ttypes  # noqa: E402

from weft_ffi import Client  # noqa: E402

ADDR = os.environ["WEFT_ECHO_ADDR"]
SECONDS = float(os.environ.get("WEFT_FFI_BENCH_D", "3"))
PAYLOAD = ttypes.Payload(text="x" * 512, blob=bytes(range(256)) * 2, count=7, ratio=0.5,
                         tags=["a", "b"], scores={"x": 1})


ROUNDS = 5


def timed(call):
    """Calls per second of `call()` run back to back: the median of ROUNDS
    rounds of SECONDS / ROUNDS each, so that a burst of load from the
    machine's other work moves one round, not the figure."""
    for _ in range(200):  # warm up: connections, caches
        call()
    rates = []
    for _ in range(ROUNDS):
        n, t0 = 0, time.perf_counter()
        deadline = t0 + SECONDS / ROUNDS
        while True:
            for _ in range(50):
                call()
            n += 50
            now = time.perf_counter()
            if now >= deadline:
                rates.append(n / (now - t0))
                break
    return sorted(rates)[ROUNDS // 2]


def apache(protocol_cls, name):
    host, port = ADDR.rsplit(":", 1)
    sock = TSocket.TSocket(host, int(port))
    sock.setTimeout(30000)
    t = TTransport.TFramedTransport(sock)
    t.open()
    c = Echo.Client(protocol_cls(t))
    try:
        return {"add": timed(lambda: c.add(20, 22)), "echo": timed(lambda: c.echo(PAYLOAD))}
    finally:
        t.close()


def shim(transport, accelerated, caller_io=True):
    with Client([ADDR], service="Echo", transport=transport, accelerated=accelerated,
                caller_io=caller_io) as c:
        add_args, echo_args = Echo.add_args(a=20, b=22), Echo.echo_args(payload=PAYLOAD)
        return {"add": timed(lambda: c.call("add", add_args, Echo.add_result)),
                "echo": timed(lambda: c.call("echo", echo_args, Echo.echo_result))}


def shim_asyncio(concurrency, accelerated, workers=None):
    import weft_ffi
    rt = weft_ffi._Runtime(workers) if workers else None

    async def run(make):
        with Client([ADDR], service="Echo", accelerated=accelerated, runtime=rt) as c:
            n = 0

            async def worker(deadline):
                nonlocal n
                while time.perf_counter() < deadline:
                    await make(c)
                    n += 1
            await asyncio.gather(*[worker(time.perf_counter() + 0.3) for _ in range(concurrency)])
            n, t0 = 0, time.perf_counter()
            await asyncio.gather(*[worker(t0 + SECONDS) for _ in range(concurrency)])
            return n / (time.perf_counter() - t0)
    add = lambda c: c.call_async("add", Echo.add_args(a=20, b=22), Echo.add_result)  # noqa: E731
    echo = lambda c: c.call_async("echo", Echo.echo_args(payload=PAYLOAD), Echo.echo_result)  # noqa: E731
    return {"add": asyncio.run(run(add)), "echo": asyncio.run(run(echo))}


def raw_socket(host, port):
    """The floor under any Python client on this machine: a framed `add`
    encoded once beforehand, written on a plain socket and its reply read,
    nothing decoded; what is left is the kernel's loopback round trip, the
    server and two socket calls from Python."""
    buf = TTransport.TMemoryBuffer()
    p = TBinaryProtocol.TBinaryProtocol(buf)
    p.writeMessageBegin("add", TMessageType.CALL, 1)
    Echo.add_args(a=20, b=22).write(p)
    p.writeMessageEnd()
    msg = buf.getvalue()
    frame = struct.pack(">i", len(msg)) + msg
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call():
        s.sendall(frame)
        got = s.recv(4096)
        # The whole frame, in the rare case it came in pieces.
        while len(got) < 4 or len(got) < 4 + struct.unpack(">i", got[:4])[0]:
            more = s.recv(4096)
            if not more:
                raise ConnectionError("the server closed the connection")
            got += more
    return s, call


def interleaved(rounds=15):
    """Apache pure Python, the shim's blocking call (TTHeader and framed,
    and without caller I/O) and the raw-socket floor, round by round in
    turn (add, C-ext codec), so that the machine's load, which drifts over
    seconds, weighs on all alike: the median over `rounds` rounds of
    SECONDS / ROUNDS of each one's time per call, and of the client
    process's CPU per call (its own threads, user and system)."""
    host, port = ADDR.rsplit(":", 1)
    sock = TSocket.TSocket(host, int(port))
    sock.setTimeout(30000)
    t = TTransport.TFramedTransport(sock)
    t.open()
    apache_c = Echo.Client(TBinaryProtocol.TBinaryProtocol(t))
    on = Client([ADDR], service="Echo")
    framed = Client([ADDR], service="Echo", transport="framed")
    off = Client([ADDR], service="Echo", caller_io=False)
    raw, raw_call = raw_socket(host, port)
    args = Echo.add_args(a=20, b=22)
    calls = {
        "Apache pure Python (framed)": lambda: apache_c.add(20, 22),
        "shim blocking, TTHeader": lambda: on.call("add", args, Echo.add_result),
        "shim blocking, framed": lambda: framed.call("add", args, Echo.add_result),
        "shim blocking, TTHeader, caller_io=False":
            lambda: off.call("add", args, Echo.add_result),
        "floor: raw socket, pre-encoded frame, no decode": raw_call,
    }
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    try:
        for f in calls.values():
            for _ in range(200):
                f()
        for _ in range(rounds):
            for name, f in calls.items():
                n, t0, c0 = 0, time.perf_counter(), time.process_time()
                deadline = t0 + SECONDS / ROUNDS
                while True:
                    for _ in range(50):
                        f()
                    n += 50
                    now = time.perf_counter()
                    if now >= deadline:
                        wall[name].append((now - t0) / n)
                        cpu[name].append((time.process_time() - c0) / n)
                        break
    finally:
        t.close()
        on.close()
        framed.close()
        off.close()
        raw.close()
    return {k: (sorted(wall[k])[len(wall[k]) // 2], sorted(cpu[k])[len(cpu[k]) // 2])
            for k in calls}


def main():
    if os.environ.get("WEFT_FFI_BENCH_PROFILE"):
        # Where the Python side of the shim spends its time (asyncio add).
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.runcall(shim_asyncio, 64, True)
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
        prof = cProfile.Profile()
        prof.runcall(shim, "ttheader", True)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        return
    cells = [
        ("Apache TSocket+TFramedTransport+TBinaryProtocol (pure Python)",
         lambda: apache(TBinaryProtocol.TBinaryProtocol, "pure")),
        ("shim, TTHeader, blocking, pure-Python codec", lambda: shim("ttheader", False)),
        ("shim, TTHeader, blocking, C-ext codec", lambda: shim("ttheader", True)),
        ("shim, framed, blocking, C-ext codec", lambda: shim("framed", True)),
        ("shim, TTHeader, blocking, C-ext codec, caller_io=False",
         lambda: shim("ttheader", True, caller_io=False)),
        ("shim, TTHeader, asyncio c=64, pure-Python codec", lambda: shim_asyncio(64, False)),
        ("shim, TTHeader, asyncio c=64, C-ext codec", lambda: shim_asyncio(64, True)),
        ("shim, TTHeader, asyncio c=16, C-ext codec", lambda: shim_asyncio(16, True)),
        ("shim, TTHeader, asyncio c=256, C-ext codec", lambda: shim_asyncio(256, True)),
        ("Apache TSocket+TFramedTransport+TBinaryProtocolAccelerated (C ext)",
         lambda: apache(TBinaryProtocol.TBinaryProtocolAccelerated, "accel")),
    ]
    results = {}
    for name, run in cells:
        results[name] = run()
    base = results[cells[0][0]]
    print(f"python_bench: {SECONDS:g} s per cell, sequential unless noted; calls/s "
          f"(us/call), the median of {ROUNDS} rounds (asyncio: of one), x = vs Apache pure Python")
    for name, r in results.items():
        row = "  ".join(f"{m} {r[m]:8.0f}/s ({1e6 / r[m]:6.1f} us) x{r[m] / base[m]:.2f}"
                        for m in ("add", "echo"))
        print(f"  {name:<70} {row}")
    mid = interleaved()
    base = mid["Apache pure Python (framed)"][0]
    print("python_bench interleaved: add, C-ext codec, in turn, median of 15 rounds; "
          "us/call, client CPU us/call, x = vs Apache pure Python")
    for name, (w, c) in mid.items():
        print(f"  {name:<70} add {1e6 * w:6.1f} us  cpu {1e6 * c:5.1f} us  x{base / w:.2f}")


if __name__ == "__main__":
    main()
