"""A grpcio interop TestService server, as gRPC's
doc/interop-test-descriptions.md defines it: `interop_server.py --port N`.

The stubs come from `python -m grpc_tools.protoc` on
shared/idl/proto/grpc/testing; the directory holding them is on sys.path
through $WEFT_GRPC_STUBS (the Rust test generates them).
"""

import argparse
import os
import sys
import time
from concurrent import futures

sys.path.insert(0, os.environ["WEFT_GRPC_STUBS"])

import grpc  # noqa: E402

import empty_pb2  # noqa: E402
import messages_pb2  # noqa: E402
import test_pb2_grpc  # noqa: E402

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
CODES = {c.value[0]: c for c in grpc.StatusCode}


def echo_metadata(context):
    md = dict(context.invocation_metadata())
    if ECHO_INITIAL in md:
        context.send_initial_metadata(((ECHO_INITIAL, md[ECHO_INITIAL]),))
    if ECHO_TRAILING in md:
        context.set_trailing_metadata(((ECHO_TRAILING, md[ECHO_TRAILING]),))


def check_status(status, context):
    if status.code != 0:
        context.abort(CODES[status.code], status.message)


def payload(size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


class TestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        echo_metadata(context)
        # expect_compressed is not checked: grpcio's server API tells
        # neither the message's compressed flag nor the request's
        # grpc-encoding, so client_compressed_* are n/a against it.
        check_status(request.response_status, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return messages_pb2.SimpleResponse(payload=payload(request.response_size))

    def CacheableUnaryCall(self, request, context):
        return self.UnaryCall(request, context)

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        check_status(request.response_status, context)
        if any(p.compressed.value for p in request.response_parameters):
            context.set_compression(grpc.Compression.Gzip)
        for p in request.response_parameters:
            if p.interval_us:
                time.sleep(p.interval_us / 1e6)
            if not p.compressed.value:
                context.disable_next_message_compression()
            yield messages_pb2.StreamingOutputCallResponse(payload=payload(p.size))

    def StreamingInputCall(self, request_iterator, context):
        total = 0
        for r in request_iterator:
            total += len(r.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for r in request_iterator:
            check_status(r.response_status, context)
            for p in r.response_parameters:
                if p.interval_us:
                    time.sleep(p.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=payload(p.size))

    def HalfDuplexCall(self, request_iterator, context):
        params = [p for r in request_iterator for p in r.response_parameters]
        for p in params:
            yield messages_pb2.StreamingOutputCallResponse(payload=payload(p.size))

    # UnimplementedCall is left to the generated servicer: UNIMPLEMENTED.


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=10000)
    parser.add_argument("--use_tls", default="false")
    args = parser.parse_args()
    if args.use_tls != "false":
        sys.exit("TLS is not supported by this server")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
