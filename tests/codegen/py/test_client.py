"""Apache Thrift's Python ThriftTest client: calls every method as Apache's
test/py/TestClient.py does and checks every result. Prints `ok` and exits 0
when all pass; otherwise lists the failures and exits 1."""
import sys
import time

import common

common.load_generated()
a = common.args()

from thrift.Thrift import TApplicationException  # noqa: E402
from thrift.protocol import TMultiplexedProtocol  # noqa: E402
from thrift.transport import TSocket  # noqa: E402
from ThriftTest import SecondService, ThriftTest  # noqa: E402
from ThriftTest.ttypes import Insanity, Numberz, Xception, Xception2, Xtruct, Xtruct2  # noqa: E402

if a.domain_socket:
    sock = TSocket.TSocket(unix_socket=a.domain_socket)
else:
    sock = TSocket.TSocket(a.host, a.port)
sock.setTimeout(10000)
trans = common.transport_factory(a).getTransport(sock)
proto = common.protocol_factory(a).getProtocol(trans)
second = None
if common.multiplexed(a):
    client = ThriftTest.Client(TMultiplexedProtocol.TMultiplexedProtocol(proto, "ThriftTest"))
    second = SecondService.Client(TMultiplexedProtocol.TMultiplexedProtocol(proto, "SecondService"))
else:
    client = ThriftTest.Client(proto)
trans.open()

failures = []


def check(what, got, want):
    if got != want:
        failures.append("%s: got %r, want %r" % (what, got, want))


def expect_raises(what, exc_type, call):
    try:
        call()
    except exc_type as e:
        return e
    except Exception as e:  # noqa: BLE001
        failures.append("%s: raised %r, want %s" % (what, e, exc_type.__name__))
        return None
    failures.append("%s: returned, want %s" % (what, exc_type.__name__))
    return None


check("testVoid", client.testVoid(), None)
for s in ["", "Python", "ünicode ☃ 🦀", "x" * 10000]:
    check("testString", client.testString(s), s)
for b in [True, False]:
    check("testBool", client.testBool(b), b)
for n in [1, 0, -1, -128, 127]:
    check("testByte", client.testByte(n), n)
for n in [-1, 0, 1, -2**31, 2**31 - 1]:
    check("testI32", client.testI32(n), n)
for n in [0, -34359738368, -2**63, 2**63 - 1]:
    check("testI64", client.testI64(n), n)
for d in [-5.2098523, 0.0, 1.7976931348623157e308, 2.2250738585072014e-308, float("inf")]:
    check("testDouble", client.testDouble(d), d)
check("testBinary", client.testBinary(bytes(range(256))), bytes(range(256)))
x = Xtruct(string_thing="Zero", byte_thing=1, i32_thing=-3, i64_thing=-5)
check("testStruct", client.testStruct(x), x)
nest = Xtruct2(byte_thing=1, struct_thing=x, i32_thing=5)
check("testNest", client.testNest(nest), nest)
m = {i: i - 10 for i in range(5)}
check("testMap", client.testMap(m), m)
sm = {"a": "2", "b": "blah", "some": "thing", "ü": "☃"}
check("testStringMap", client.testStringMap(sm), sm)
st = set(range(-2, 3))
check("testSet", client.testSet(st), st)
lst = [-2, -1, 0, 1, 2, 2**31 - 1]
check("testList", client.testList(lst), lst)
for e in [Numberz.ONE, Numberz.TWO, Numberz.THREE, Numberz.FIVE, Numberz.EIGHT]:
    check("testEnum", client.testEnum(e), e)
check("testTypedef", client.testTypedef(309858235082523), 309858235082523)
check("testMapMap", client.testMapMap(1),
      {-4: {-4: -4, -3: -3, -2: -2, -1: -1}, 4: {1: 1, 2: 2, 3: 3, 4: 4}})
ins = Insanity(userMap={Numberz.FIVE: 5, Numberz.EIGHT: 8},
               xtructs=[Xtruct(string_thing="Goodbye4", byte_thing=4, i32_thing=4, i64_thing=4),
                        Xtruct(string_thing="Hello2", byte_thing=2, i32_thing=2, i64_thing=2)])
got = client.testInsanity(ins)
check("testInsanity[1][TWO]", got[1][Numberz.TWO], ins)
check("testInsanity[1][THREE]", got[1][Numberz.THREE], ins)
check("testInsanity[2][SIX]", got[2][Numberz.SIX], Insanity())
check("testInsanity keys", sorted(got.keys()), [1, 2])
check("testMulti", client.testMulti(1, 2, 3, {1: "one"}, Numberz.TWO, 42),
      Xtruct(string_thing="Hello2", byte_thing=1, i32_thing=2, i64_thing=3))

e = expect_raises("testException(Xception)", Xception, lambda: client.testException("Xception"))
if e is not None:
    check("testException(Xception)", (e.errorCode, e.message), (1001, "Xception"))
expect_raises("testException(TException)", TApplicationException,
              lambda: client.testException("TException"))
check("testException(success)", client.testException("success"), None)
e = expect_raises("testMultiException(Xception)", Xception,
                  lambda: client.testMultiException("Xception", "ignored"))
if e is not None:
    check("testMultiException(Xception)", (e.errorCode, e.message), (1001, "This is an Xception"))
e = expect_raises("testMultiException(Xception2)", Xception2,
                  lambda: client.testMultiException("Xception2", "ignored"))
if e is not None:
    check("testMultiException(Xception2)", (e.errorCode, e.struct_thing.string_thing),
          (2002, "This is an Xception2"))
check("testMultiException", client.testMultiException("no exception", "test 3").string_thing, "test 3")

started = time.monotonic()
client.testOneway(1)
if time.monotonic() - started > 0.9:
    failures.append("testOneway waited for the server")
check("testVoid after testOneway", client.testVoid(), None)

if second is not None:
    check("secondtestString", second.secondtestString("foo"), 'testString("foo")')

trans.close()
if failures:
    for f in failures:
        print("FAIL", f)
    sys.exit(1)
print("ok")
