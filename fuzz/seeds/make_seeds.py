#!/usr/bin/env python3
"""Writes seed inputs for the Thrift fuzz targets from what Apache Thrift's
own Python library (thrift 0.25) puts on the wire: ThriftTest calls, and the
replies of a ThriftTest processor, in binary and compact, framed, buffered,
THeader and THeader-in-a-frame. Run from the repository root:

    python3 fuzz/seeds/apache_frames.py

It generates the Python code for ThriftTest.thrift with Debian's `thrift`
compiler into a temporary directory.
"""
import os
import subprocess
import sys
import tempfile
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDL = os.path.join(ROOT, "..", "shared", "idl", "thrift", "ThriftTest.thrift")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

gen = tempfile.mkdtemp()
subprocess.run(["thrift", "--gen", "py", "-out", gen, IDL], check=True)
sys.path.insert(0, gen)

from thrift.protocol import TBinaryProtocol, TCompactProtocol, THeaderProtocol  # noqa: E402
from thrift.transport import TTransport  # noqa: E402
from ThriftTest import ThriftTest  # noqa: E402
from ThriftTest.ttypes import Insanity, Numberz, Xtruct, Xtruct2  # noqa: E402


def xtruct():
    return Xtruct(string_thing="Zero", byte_thing=1, i32_thing=-3, i64_thing=-5)


CALLS = [
    ("testVoid", ()),
    ("testString", ("hello, ünïcode",)),
    ("testBool", (True,)),
    ("testI64", (-(1 << 40),)),
    ("testDouble", (-5.25,)),
    ("testBinary", (bytes(range(16)),)),
    ("testStruct", (xtruct(),)),
    ("testNest", (Xtruct2(byte_thing=1, struct_thing=xtruct(), i32_thing=5),)),
    ("testMap", ({1: 2, 3: 4},)),
    ("testSet", ({1, 2, 3},)),
    ("testList", ([1, 2, 3],)),
    ("testEnum", (Numberz.FIVE,)),
    ("testMapMap", (1,)),
    ("testInsanity", (Insanity(userMap={Numberz.FIVE: 5}, xtructs=[xtruct()]),)),
    ("testMulti", (1, 2, 3, {1: "x"}, Numberz.TWO, 7)),
    ("testException", ("Xception",)),
    ("testOneway", (1,)),
]


class Handler:
    def __getattr__(self, name):
        def answer(*args):
            if name == "testException":
                from ThriftTest.ttypes import Xception
                raise Xception(errorCode=1001, message=args[0])
            if name == "testMapMap":
                return {4: {1: 1, 2: 2}, -4: {-1: -1}}
            if name == "testInsanity":
                return {1: {Numberz.TWO: args[0]}}
            if name == "testMulti":
                return Xtruct(string_thing="Hello2", byte_thing=args[0], i32_thing=args[1], i64_thing=args[2])
            return args[0] if args else None
        return answer


def protocols():
    yield "binary", TBinaryProtocol.TBinaryProtocolFactory()
    yield "compact", TCompactProtocol.TCompactProtocolFactory()


def write(target, name, data, control=b"\x00"):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(control + data)


def calls(pname, pfactory, transport):
    """Every call of CALLS in one stream, and the replies to them."""
    requests, replies = b"", b""
    for i, (method, args) in enumerate(CALLS):
        out = TTransport.TMemoryBuffer()
        if transport == "header":
            proto = THeaderProtocol.THeaderProtocol(out, allowed_client_types=None,
                                                    default_protocol=0 if pname == "binary" else 2)
            wire = out
        else:
            wire = TTransport.TFramedTransport(out) if transport == "framed" else TTransport.TBufferedTransport(out)
            proto = pfactory.getProtocol(wire)
        client = ThriftTest.Client(proto)
        client._seqid = i
        getattr(client, "send_" + method)(*args)
        req = out.getvalue()
        requests += req
        if transport == "header":
            continue
        # The processor's reply, framed as the request was.
        inp = TTransport.TMemoryBuffer(req)
        rin = TTransport.TFramedTransport(inp) if transport == "framed" else TTransport.TBufferedTransport(inp)
        rout_buf = TTransport.TMemoryBuffer()
        rout = TTransport.TFramedTransport(rout_buf) if transport == "framed" else TTransport.TBufferedTransport(rout_buf)
        ThriftTest.Processor(Handler()).process(pfactory.getProtocol(rin), pfactory.getProtocol(rout))
        replies += rout_buf.getvalue()
    return requests, replies


# Selector bytes of the client target: transport index (framed 0, buffered 1,
# TTHeader 2, THeader 3, framed THeader 4), 0x80 for compact.
TRANSPORT_INDEX = {"framed": 0, "buffered": 1, "header": 3}
for pname, pf in protocols():
    for transport in ["framed", "buffered", "header"]:
        reqs, reps = calls(pname, pf, transport)
        name = f"apache-{pname}-{transport}"
        write("thrift_server", name, reqs)
        # Chunked: a few odd-sized reads.
        write("thrift_server", name + "-chunked", reqs, control=bytes([5, 1, 3, 7, 2, 11]))
        sel = TRANSPORT_INDEX[transport] | (0x80 if pname == "compact" else 0)
        if reps:
            write("thrift_client", name, reps, control=bytes([sel, 0]))
        write("frame", name, reqs, control=bytes([sel, 0]))
        write("ffi_raw", name, reqs, control=bytes([0x80 if pname == "compact" else 0, 0]))
    # THeader inside a frame, as TFramedTransport under THeaderProtocol.
    out = TTransport.TMemoryBuffer()
    framed = TTransport.TFramedTransport(out)
    proto = THeaderProtocol.THeaderProtocol(framed, allowed_client_types=None,
                                            default_protocol=0 if pname == "binary" else 2)
    ThriftTest.Client(proto).send_testString("framed header")
    write("thrift_server", f"apache-{pname}-framed-header", out.getvalue())
    write("frame", f"apache-{pname}-framed-header", out.getvalue(),
          control=bytes([4 | (0x80 if pname == "compact" else 0), 0]))


# ===== ThriftTest's structs alone (thrift_typed, thrift_roundtrip, thrift_skip) =====

from thrift.protocol.TProtocol import TType  # noqa: E402
from ThriftTest.ttypes import (  # noqa: E402
    Bonk, Bools, CrazyNesting, ListBonks, NestedListsBonk, NestedMixedx2, OptionalBinary,
    StructA, VersioningTestV2,
)

# Index in weft_fuzz::with_thrift_test_type!.
STRUCTS = [
    (0, Bonk(message="bonk", type=3)),
    (1, Bools(im_true=True, im_false=False)),
    (2, xtruct()),
    (3, Xtruct2(byte_thing=1, struct_thing=xtruct(), i32_thing=5)),
    (5, Insanity(userMap={Numberz.FIVE: 5, Numberz.EIGHT: 8}, xtructs=[xtruct(), xtruct()])),
    (6, CrazyNesting(string_field="crazy", binary_field=b"\x00\xff")),
    (13, VersioningTestV2(begin_in_both=1, newint=2, newbyte=3, newshort=4, newlong=5, newdouble=6.5,
                          newstruct=Bonk(message="m", type=1), newlist=[1, 2], newset={3},
                          newmap={4: 5}, newstring="s", end_in_both=9)),
    (20, NestedMixedx2(int_set_list=[{1, 2}, {3}], map_int_strset={1: {"a", "b"}},
                       map_int_strset_list=[{2: {"c"}}])),
    (21, ListBonks(bonk=[Bonk(message="a", type=1), Bonk(message="b", type=2)])),
    (22, NestedListsBonk(bonk=[[[Bonk(message="deep", type=1)]]])),
    (24, StructA(s="a")),
    (27, OptionalBinary(bin_set={b"x"}, bin_map={b"k": 1})),
]


def encode(obj, pfactory):
    out = TTransport.TMemoryBuffer()
    obj.write(pfactory.getProtocol(out))
    return out.getvalue()


for pname, pf in protocols():
    flag = 0x80 if pname == "compact" else 0
    stream = b""
    for idx, obj in STRUCTS:
        value = encode(obj, pf)
        stream += bytes([idx | flag]) + value
        write("thrift_roundtrip", f"apache-{pname}-{type(obj).__name__}", value, control=bytes([idx | flag]))
        write("thrift_skip", f"apache-{pname}-{type(obj).__name__}", value, control=bytes([flag]))
    write("thrift_typed", f"apache-{pname}-all", stream, control=b"\x00")
    # A stream of values of chosen types for the skip target: STRUCT, then
    # a list<i32> and a string, each after its type's index.
    lst = encode(ListBonks(bonk=[Bonk(message="x", type=1)]), pf)
    write("thrift_skip", f"apache-{pname}-stream", lst + bytes([9]) + lst, control=bytes([flag]))


# ===== TTHeader frames in Kitex's layout (thrift_server, thrift_client, frame, header) =====

import struct  # noqa: E402


def ttheader(payload, seq, strings=(), ints=(), protocol=0):
    info = b""
    if ints:
        info += b"\x10" + struct.pack(">H", len(ints))
        for k, v in ints:
            info += struct.pack(">HH", k, len(v)) + v
    if strings:
        info += b"\x01" + struct.pack(">H", len(strings))
        for k, v in strings:
            info += struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
    header = bytes([protocol, 0]) + info
    header += b"\x00" * (-len(header) % 4)
    body = struct.pack(">HHi", 0x1000, 0, seq) + struct.pack(">H", len(header) // 4) + header + payload
    return struct.pack(">I", len(body)) + body


def bare_call(method, seq, pf, args=b"\x00"):
    """A call envelope and arguments, without a transport."""
    out = TTransport.TMemoryBuffer()
    proto = pf.getProtocol(out)
    from thrift.Thrift import TMessageType
    proto.writeMessageBegin(method, TMessageType.CALL, seq)
    proto.writeMessageEnd()
    return out.getvalue() + args


for pname, pf in protocols():
    pid = 0 if pname == "binary" else 2
    flag = 0x80 if pname == "compact" else 0
    frames = b""
    for i, (method, _) in enumerate(CALLS[:8]):
        args = encode(ThriftTest.__dict__[method + "_args"](*CALLS[i][1]), pf)
        msg = bare_call(method, i, pf, args)
        frames += ttheader(msg, i, strings=[(b"RPC_PERSIST_tenant", b"blue"), (b"RPC_TRANSIT_k", b"v"),
                                             (b"isn", b"ThriftTest")],
                           ints=[(3, b"caller"), (9, method.encode()), (12, b"1000"), (16, b"3")],
                           protocol=pid)
    write("thrift_server", f"ttheader-{pname}", frames)
    write("thrift_server", f"ttheader-{pname}-chunked", frames, control=bytes([4, 3, 9, 1, 20]))
    write("frame", f"ttheader-{pname}", frames, control=bytes([2 | flag, 0]))
    write("ffi_raw", f"ttheader-{pname}", frames, control=bytes([flag, 0]))
    # A TTHeader header alone, for the header target's raw mode: it reads
    # what follows the fixed prologue (header size onwards).
    one = ttheader(bare_call("testVoid", 1, pf), 1, strings=[(b"RPC_PERSIST_a", b"1"), (b"crrst", b"1")],
                   ints=[(22, b"\x01")], protocol=pid)
    write("header", f"ttheader-{pname}-raw", one[12:], control=bytes([0 | flag]))
    # The write-then-read mode: keys and values separated by 0xff.
    write("header", f"ttheader-{pname}-kv", b"\x00tenant\xffblue\xff\x01hop\xff2\xffcrrst\xff1",
          control=bytes([0x40 | flag]))
    write("header", f"theader-{pname}-kv", b"\x00tenant\xffblue\xffk\xffv", control=bytes([0x41 | flag]))

# Replies in TTHeader: a reply envelope whose result struct holds a string.
for pname, pf in protocols():
    pid = 0 if pname == "binary" else 2
    flag = 0x80 if pname == "compact" else 0
    out = TTransport.TMemoryBuffer()
    proto = pf.getProtocol(out)
    from thrift.Thrift import TMessageType
    proto.writeMessageBegin("testString", TMessageType.REPLY, 3)
    ThriftTest.testString_result(success="answer").write(proto)
    reply = ttheader(out.getvalue(), 3, strings=[(b"RPC_BACKWARD_k", b"v"), (b"biz-status", b"1")],
                     ints=[(22, b"\x02")], protocol=pid)
    write("thrift_client", f"ttheader-{pname}-reply", reply + reply, control=bytes([2 | flag, 0]))
    write("ffi_raw", f"ttheader-{pname}-reply", reply, control=bytes([0x40 | 2 | flag, 0]))


# ===== protobuf messages (protobuf) and gRPC framing (grpc_frame) =====

import gzip  # noqa: E402

PROTO_ROOT = os.path.join(ROOT, "..", "shared", "idl", "proto")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={gen}",
                "grpc/testing/messages.proto"], check=True)
# Loaded by path: `grpc` is grpcio's package.
import importlib.util  # noqa: E402
spec = importlib.util.spec_from_file_location("messages_pb2", os.path.join(gen, "grpc", "testing", "messages_pb2.py"))
pb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pb)

req = pb.SimpleRequest(response_size=314159, payload=pb.Payload(body=b"\x00" * 16), fill_username=True,
                       response_compressed=pb.BoolValue(value=True),
                       response_status=pb.EchoStatus(code=2, message="ünïcode"))
resp = pb.SimpleResponse(payload=pb.Payload(body=b"abc"), username="user", oauth_scope="scope")
stream_req = pb.StreamingOutputCallRequest(response_parameters=[pb.ResponseParameters(size=31415),
                                                                pb.ResponseParameters(size=9)],
                                           payload=pb.Payload(body=b"xyz"))
# Indexes in the protobuf target.
for idx, m in [(6, req), (7, resp), (8, stream_req), (11, pb.Payload(body=b"\x01\x02"))]:
    write("protobuf", f"python-{type(m).__name__}", m.SerializeToString(), control=bytes([idx]))
# features.proto's Outer, by hand: title, inner{name, tags}, labels map
# entry, oneof text, a child Outer, raw bytes.
inner = b"\x0a\x04name\x12\x01a\x12\x01b"
outer = (b"\x0a\x05title" + b"\x1a" + bytes([len(inner)]) + inner + b"\x2a\x08\x0a\x01k\x12\x03val"
         + b"\x3a\x04text" + b"\x50\x01" + b"\x72\x07\x0a\x05child" + b"\x7a\x02\x00\xff")
write("protobuf", "outer", outer, control=bytes([0]))
write("protobuf", "inner", inner, control=bytes([1]))
# google.protobuf.Struct {fields: {"a": Value{number_value: 1.5}}}
value = b"\x11" + struct.pack("<d", 1.5)
entry = b"\x0a\x01a\x12" + bytes([len(value)]) + value
write("protobuf", "struct", b"\x0a" + bytes([len(entry)]) + entry, control=bytes([3]))

msgs = [req.SerializeToString(), resp.SerializeToString(), b"", stream_req.SerializeToString()]
plain = b"".join(b"\x00" + struct.pack(">I", len(m)) + m for m in msgs)
zipped = b"".join(b"\x01" + struct.pack(">I", len(z)) + z for z in (gzip.compress(m) for m in msgs))
write("grpc_frame", "plain", plain, control=bytes([0, 0]))
write("grpc_frame", "plain-chunked", plain, control=bytes([0, 5, 1, 4, 2, 9, 3]))
write("grpc_frame", "gzip", zipped, control=bytes([1, 0]))
write("grpc_frame", "mixed-chunked", plain + zipped, control=bytes([1, 4, 5, 6, 1, 1, 30]))
write("grpc_frame", "roundtrip", b"hello\xffworld\xff\xff" + msgs[0], control=bytes([5, 0]))


# ===== gRPC metadata (grpc_metadata) =====

# Pairs separated by 0xff; a name byte below 40 picks a gRPC header name.
META = [
    b"\x00\xff1000m\xff\x01\xffgzip\xff\x02\xffgzip, identity\xff\x03\xff13\xff\x04\xffbad%20thing%zz",
    b"\x00\xff99999999H\xff\x00\xff5n\xff\x00\xff123456789S",
    b"\x05\xffCAgSBGRlYWQ\xff\x06\xffblue\xff\x07\xffhop\xff\x08\xffAAEC==\xffx-custom\xffv",
    b"content-type\xffapplication/grpc+proto\xffrpc-persist-tenant\xffblue\xffauthorization\xffBearer x",
]
for i, m in enumerate(META):
    write("grpc_metadata", f"meta-{i}", m, control=b"")


# ===== IDL files (idl_thrift, idl_proto) =====

for name in ["Types.thrift", "Service.thrift", "Recursive.thrift", "SmallTest.thrift",
             "TypedefTest.thrift", "OptionalRequiredTest.thrift"]:
    with open(os.path.join(ROOT, "..", "shared", "idl", "thrift", name), "rb") as f:
        write("idl_thrift", name, f.read(), control=b"")
for name in ["helloworld.proto", "health.proto", "route_guide.proto", "wellknown.proto"]:
    with open(os.path.join(PROTO_ROOT, name), "rb") as f:
        write("idl_proto", name, f.read(), control=b"")
print("written under", CORPUS)
