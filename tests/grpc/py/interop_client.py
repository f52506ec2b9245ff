"""A grpcio interop client implementing the cases of gRPC's
doc/interop-test-descriptions.md, with the official flags:
`interop_client.py --server_host H --server_port P --test_case CASE|all`.
Prints PASS/FAIL per case; exits non-zero if any case failed.

The stubs come from `python -m grpc_tools.protoc` on
shared/idl/proto/grpc/testing, found through $WEFT_GRPC_STUBS.
"""

import argparse
import os
import queue
import sys
import traceback

sys.path.insert(0, os.environ["WEFT_GRPC_STUBS"])

import grpc  # noqa: E402

import empty_pb2  # noqa: E402
import messages_pb2 as m  # noqa: E402
import test_pb2_grpc  # noqa: E402

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
TIMEOUT = 10.0

CASES = [
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
]


class CaseFailed(Exception):
    pass


def ensure(cond, what):
    if not cond:
        raise CaseFailed(what)


def zeros(n):
    return m.Payload(type=m.COMPRESSABLE, body=b"\0" * n)


def check_payload(p, n):
    ensure(len(p.body) == n, f"payload of {len(p.body)} bytes, expected {n}")
    ensure(p.body == b"\0" * n, "payload not zeros")


def expect_code(fn, code):
    try:
        fn()
    except grpc.RpcError as e:
        ensure(e.code() == code, f"expected {code}, got {e.code()}: {e.details()}")
        return e
    raise CaseFailed(f"expected {code}, got a success")


def large_request(**kw):
    return m.SimpleRequest(
        response_type=m.COMPRESSABLE, response_size=314159, payload=zeros(271828), **kw
    )


class Requests:
    """A request iterator fed one message at a time (for ping-pong)."""

    def __init__(self):
        self._q = queue.Queue()

    def send(self, r):
        self._q.put(r)

    def close(self):
        self._q.put(None)

    def __iter__(self):
        return self

    def __next__(self):
        r = self._q.get()
        if r is None:
            raise StopIteration
        return r


def run(stub, unimplemented, case):
    if case == "empty_unary":
        ensure(stub.EmptyCall(empty_pb2.Empty(), timeout=TIMEOUT) == empty_pb2.Empty(), "not empty")
    elif case == "large_unary":
        check_payload(stub.UnaryCall(large_request(), timeout=TIMEOUT).payload, 314159)
    elif case == "client_compressed_unary":
        probe = large_request(expect_compressed=m.BoolValue(value=True))
        expect_code(lambda: stub.UnaryCall(probe, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT)
        r = stub.UnaryCall(probe, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
        check_payload(r.payload, 314159)
        plain = large_request(expect_compressed=m.BoolValue(value=False))
        check_payload(stub.UnaryCall(plain, timeout=TIMEOUT).payload, 314159)
    elif case == "server_compressed_unary":
        for c in (True, False):
            req = large_request(response_compressed=m.BoolValue(value=c))
            check_payload(stub.UnaryCall(req, timeout=TIMEOUT).payload, 314159)
    elif case == "client_streaming":
        reqs = [m.StreamingInputCallRequest(payload=zeros(n)) for n in (27182, 8, 1828, 45904)]
        r = stub.StreamingInputCall(iter(reqs), timeout=TIMEOUT)
        ensure(r.aggregated_payload_size == 74922, f"aggregated {r.aggregated_payload_size}")
    elif case == "client_compressed_streaming":
        probe = m.StreamingInputCallRequest(
            payload=zeros(27182), expect_compressed=m.BoolValue(value=True)
        )
        expect_code(
            lambda: stub.StreamingInputCall(iter([probe]), timeout=TIMEOUT),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        second = m.StreamingInputCallRequest(
            payload=zeros(45904), expect_compressed=m.BoolValue(value=False)
        )
        r = stub.StreamingInputCall(
            iter([probe, second]), timeout=TIMEOUT, compression=grpc.Compression.Gzip
        )
        ensure(r.aggregated_payload_size == 73086, f"aggregated {r.aggregated_payload_size}")
    elif case == "server_streaming":
        sizes = (31415, 9, 2653, 58979)
        req = m.StreamingOutputCallRequest(
            response_type=m.COMPRESSABLE,
            response_parameters=[m.ResponseParameters(size=n) for n in sizes],
        )
        got = [r.payload for r in stub.StreamingOutputCall(req, timeout=TIMEOUT)]
        ensure(len(got) == len(sizes), f"{len(got)} responses, expected {len(sizes)}")
        for p, n in zip(got, sizes):
            check_payload(p, n)
    elif case == "server_compressed_streaming":
        req = m.StreamingOutputCallRequest(
            response_type=m.COMPRESSABLE,
            response_parameters=[
                m.ResponseParameters(size=31415, compressed=m.BoolValue(value=True)),
                m.ResponseParameters(size=92653, compressed=m.BoolValue(value=False)),
            ],
        )
        got = [r.payload for r in stub.StreamingOutputCall(req, timeout=TIMEOUT)]
        ensure(len(got) == 2, f"{len(got)} responses, expected 2")
        check_payload(got[0], 31415)
        check_payload(got[1], 92653)
    elif case == "ping_pong":
        reqs = Requests()
        call = stub.FullDuplexCall(reqs, timeout=TIMEOUT)
        try:
            for resp, req in ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904)):
                reqs.send(
                    m.StreamingOutputCallRequest(
                        response_type=m.COMPRESSABLE,
                        response_parameters=[m.ResponseParameters(size=resp)],
                        payload=zeros(req),
                    )
                )
                check_payload(next(call).payload, resp)
            reqs.close()
            ensure(next(call, None) is None, "more responses than requests")
        finally:
            reqs.close()
    elif case == "empty_stream":
        call = stub.FullDuplexCall(iter([]), timeout=TIMEOUT)
        ensure(next(call, None) is None, "a response to no request")
    elif case == "custom_metadata":
        md = ((ECHO_INITIAL, "test_initial_metadata_value"), (ECHO_TRAILING, b"\xab\xab\xab"))
        req = large_request()
        req.response_size = 1
        req.payload.body = b"\0"
        _, call = stub.UnaryCall.with_call(req, timeout=TIMEOUT, metadata=md)
        check_echo(call.initial_metadata(), call.trailing_metadata())
        one = m.StreamingOutputCallRequest(
            response_type=m.COMPRESSABLE,
            response_parameters=[m.ResponseParameters(size=1)],
            payload=zeros(1),
        )
        call = stub.FullDuplexCall(iter([one]), timeout=TIMEOUT, metadata=md)
        for _ in call:
            pass
        check_echo(call.initial_metadata(), call.trailing_metadata())
    elif case in ("status_code_and_message", "special_status_message"):
        if case == "status_code_and_message":
            message = "test status message"
        else:
            message = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
        status = m.EchoStatus(code=2, message=message)
        e = expect_code(
            lambda: stub.UnaryCall(m.SimpleRequest(response_status=status), timeout=TIMEOUT),
            grpc.StatusCode.UNKNOWN,
        )
        ensure(e.details() == message, f"message {e.details()!r}")
        if case == "status_code_and_message":
            req = m.StreamingOutputCallRequest(response_status=status)

            def duplex():
                for _ in stub.FullDuplexCall(iter([req]), timeout=TIMEOUT):
                    pass

            e = expect_code(duplex, grpc.StatusCode.UNKNOWN)
            ensure(e.details() == message, f"stream message {e.details()!r}")
    elif case == "unimplemented_method":
        expect_code(
            lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT),
            grpc.StatusCode.UNIMPLEMENTED,
        )
    elif case == "unimplemented_service":
        expect_code(
            lambda: unimplemented.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT),
            grpc.StatusCode.UNIMPLEMENTED,
        )
    elif case == "cancel_after_begin":
        reqs = Requests()
        fut = stub.StreamingInputCall.future(reqs, timeout=TIMEOUT)
        fut.cancel()
        reqs.close()
        ensure(fut.cancelled(), "the call was not cancelled")
        try:
            fut.result()
            raise CaseFailed("a result after cancel")
        except grpc.FutureCancelledError:
            pass
    elif case == "cancel_after_first_response":
        reqs = Requests()
        call = stub.FullDuplexCall(reqs, timeout=TIMEOUT)
        reqs.send(
            m.StreamingOutputCallRequest(
                response_type=m.COMPRESSABLE,
                response_parameters=[m.ResponseParameters(size=31415)],
                payload=zeros(27182),
            )
        )
        check_payload(next(call).payload, 31415)
        call.cancel()
        reqs.close()
        ensure(call.code() == grpc.StatusCode.CANCELLED, f"code {call.code()}")
    elif case == "timeout_on_sleeping_server":
        reqs = Requests()
        call = stub.FullDuplexCall(reqs, timeout=0.001)
        reqs.send(m.StreamingOutputCallRequest(payload=zeros(27182)))

        def drain():
            for _ in call:
                pass

        try:
            expect_code(drain, grpc.StatusCode.DEADLINE_EXCEEDED)
        finally:
            reqs.close()
    else:
        raise CaseFailed(f"unknown test case {case}")


def check_echo(initial, trailing):
    initial, trailing = dict(initial or ()), dict(trailing or ())
    got = initial.get(ECHO_INITIAL)
    ensure(got == "test_initial_metadata_value", f"initial echo {got!r}")
    got = trailing.get(ECHO_TRAILING)
    ensure(got == b"\xab\xab\xab", f"trailing echo {got!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, default=10000)
    parser.add_argument("--test_case", default="all")
    parser.add_argument("--use_tls", default="false")
    args = parser.parse_args()
    if args.use_tls != "false":
        sys.exit("TLS is not supported by this client")
    cases = CASES if args.test_case == "all" else args.test_case.split(",")
    channel = grpc.insecure_channel(f"{args.server_host}:{args.server_port}")
    stub = test_pb2_grpc.TestServiceStub(channel)
    unimplemented = test_pb2_grpc.UnimplementedServiceStub(channel)
    failed = []
    for case in cases:
        try:
            run(stub, unimplemented, case)
            print(f"PASS {case}", flush=True)
        except (CaseFailed, grpc.RpcError, StopIteration) as e:
            detail = e.details() if isinstance(e, grpc.RpcError) else e
            code = f"{e.code()}: " if isinstance(e, grpc.RpcError) else ""
            print(f"FAIL {case}: {code}{detail!r}", flush=True)
            failed.append(case)
        except Exception:  # noqa: BLE001
            print(f"FAIL {case}: {traceback.format_exc()}", flush=True)
            failed.append(case)
    channel.close()
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
