"""Shared by the Apache Thrift peers of Weft's interop tests."""
import argparse
import math
import os
import sys

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.transport import TTransport


def load_generated():
    """Put the code `thrift --gen py` wrote (WEFT_GEN_PY) on the path."""
    sys.path.insert(0, os.environ["WEFT_GEN_PY"])


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--protocol", choices=["binary", "compact"], required=True)
    p.add_argument("--transport", choices=["framed", "buffered"], required=True)
    p.add_argument("--service", default="",
                   help="call through TMultiplexedProtocol with this service name")
    return p.parse_args()


def factories(a):
    tf = (TTransport.TFramedTransportFactory() if a.transport == "framed"
          else TTransport.TBufferedTransportFactory())
    pf = (TBinaryProtocol.TBinaryProtocolFactory() if a.protocol == "binary"
          else TCompactProtocol.TCompactProtocolFactory())
    return tf, pf


def sample_payload(ttypes, blob_len):
    """The same payload as weft_interop::sample_payload, built independently."""
    return ttypes.Payload(
        text="hello, wörld",
        blob=bytes(i % 251 for i in range(blob_len)),
        count=2**63 - 1 - 7,
        ratio=math.pi,
        tags=["a", "bb"],
        scores={"alpha": 1, "omega": -(1 << 40)},
        inner=ttypes.Inner(name="inner", values=[1, -2, 2**31 - 1]),
        children=[ttypes.Inner(name="child", values=[])],
        labels={"x", "ünïcødé"},
        flag=True,
    )
