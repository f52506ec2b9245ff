"""Apache Thrift's Python ThriftTest server, with the semantics of Apache's
test/py/TestServer.py. Prints `serving` once it listens."""
import time

import common

common.load_generated()
a = common.args()

from thrift import Thrift  # noqa: E402
from thrift.server import TServer  # noqa: E402
from thrift.TMultiplexedProcessor import TMultiplexedProcessor  # noqa: E402
from thrift.transport import TSocket  # noqa: E402
from ThriftTest import SecondService, ThriftTest  # noqa: E402
from ThriftTest.ttypes import Insanity, Numberz, Xception, Xception2, Xtruct  # noqa: E402


class Handler:
    def testVoid(self):
        pass

    def testString(self, thing):
        return thing

    def testBool(self, thing):
        return thing

    def testByte(self, thing):
        return thing

    def testI32(self, thing):
        return thing

    def testI64(self, thing):
        return thing

    def testDouble(self, thing):
        return thing

    def testBinary(self, thing):
        return thing

    def testStruct(self, thing):
        return thing

    def testNest(self, thing):
        return thing

    def testMap(self, thing):
        return thing

    def testStringMap(self, thing):
        return thing

    def testSet(self, thing):
        return thing

    def testList(self, thing):
        return thing

    def testEnum(self, thing):
        return thing

    def testTypedef(self, thing):
        return thing

    def testMapMap(self, hello):
        return {-4: {-4: -4, -3: -3, -2: -2, -1: -1}, 4: {1: 1, 2: 2, 3: 3, 4: 4}}

    def testInsanity(self, argument):
        return {1: {Numberz.TWO: argument, Numberz.THREE: argument}, 2: {Numberz.SIX: Insanity()}}

    def testMulti(self, arg0, arg1, arg2, arg3, arg4, arg5):
        return Xtruct(string_thing="Hello2", byte_thing=arg0, i32_thing=arg1, i64_thing=arg2)

    def testException(self, arg):
        if arg == "Xception":
            raise Xception(errorCode=1001, message=arg)
        elif arg == "TException":
            raise Thrift.TException(message="This is a TException")

    def testMultiException(self, arg0, arg1):
        if arg0 == "Xception":
            raise Xception(errorCode=1001, message="This is an Xception")
        elif arg0 == "Xception2":
            raise Xception2(errorCode=2002, struct_thing=Xtruct(string_thing="This is an Xception2"))
        return Xtruct(string_thing=arg1)

    def testOneway(self, seconds):
        time.sleep(seconds)


class SecondHandler:
    def secondtestString(self, thing):
        return 'testString("%s")' % thing


if common.multiplexed(a):
    processor = TMultiplexedProcessor()
    processor.registerProcessor("ThriftTest", ThriftTest.Processor(Handler()))
    processor.registerProcessor("SecondService", SecondService.Processor(SecondHandler()))
else:
    processor = ThriftTest.Processor(Handler())

if a.domain_socket:
    sock = TSocket.TServerSocket(unix_socket=a.domain_socket)
else:
    sock = TSocket.TServerSocket(a.host, a.port)
if a.server_type == "simple":
    # One connection at a time, as Apache's cross test runs it: a client
    # that needs two connections at once never gets the second served.
    server = TServer.TSimpleServer(
        processor, sock, common.transport_factory(a), common.protocol_factory(a))
else:
    server = TServer.TThreadedServer(
        processor, sock, common.transport_factory(a), common.protocol_factory(a), daemon=True)
print("serving", flush=True)
server.serve()
