"""Shared by the Python peers of the ThriftTest cross test: Apache's flags,
and transports and protocols from them."""
import argparse
import os
import sys


def load_generated():
    """Put the code `thrift --gen py` wrote (WEFT_GEN_PY) on the path."""
    sys.path.insert(0, os.environ["WEFT_GEN_PY"])


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--protocol", default="binary",
                   choices=["binary", "compact", "header", "multi", "multic", "multih"])
    p.add_argument("--transport", default="buffered", choices=["buffered", "framed"])
    p.add_argument("--domain-socket", default=None)
    p.add_argument("--server-type", default="threaded", choices=["simple", "threaded"])
    return p.parse_args()


def protocol_factory(a):
    from thrift.protocol import TBinaryProtocol, TCompactProtocol, THeaderProtocol
    if a.protocol in ("header", "multih"):
        return THeaderProtocol.THeaderProtocolFactory()
    if a.protocol in ("compact", "multic"):
        return TCompactProtocol.TCompactProtocolFactory()
    return TBinaryProtocol.TBinaryProtocolFactory()


def transport_factory(a):
    from thrift.transport import TTransport
    # The header protocol over framed puts each THeader frame inside a
    # frame, as Apache's cross test runs it; over buffered it frames itself.
    if a.transport == "framed":
        return TTransport.TFramedTransportFactory()
    return TTransport.TBufferedTransportFactory()


def multiplexed(a):
    return a.protocol.startswith("multi")
