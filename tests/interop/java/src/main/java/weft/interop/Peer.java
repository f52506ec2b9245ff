package weft.interop;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import org.apache.thrift.TException;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.protocol.TCompactProtocol;
import org.apache.thrift.protocol.TProtocol;
import org.apache.thrift.protocol.TProtocolFactory;
import org.apache.thrift.server.TServer;
import org.apache.thrift.server.TSimpleServer;
import org.apache.thrift.transport.TServerSocket;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.TTransportFactory;
import org.apache.thrift.transport.layered.TFramedTransport;
import thrift.test.Insanity;
import thrift.test.Numberz;
import thrift.test.ThriftTest;
import thrift.test.Xception;
import thrift.test.Xception2;
import thrift.test.Xtruct;
import thrift.test.Xtruct2;

/**
 * A ThriftTest server or client on Apache Thrift's Java library, for Weft's
 * interop tests, with the flags of Apache's cross-test programs:
 *
 * <pre>
 *   Peer server --protocol=P --transport=T           prints "listening on ADDR"
 *   Peer client --addr=HOST:PORT --protocol=P --transport=T
 * </pre>
 *
 * P is binary or compact, T buffered or framed (the Java library has no
 * THeader). The client calls every method, prints "FAIL method: why" for each
 * failure and exits 1 when there is any.
 */
public final class Peer {
  private Peer() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      usage();
    }
    Map<String, String> flags = new HashMap<>();
    flags.put("addr", "127.0.0.1:0");
    flags.put("protocol", "binary");
    flags.put("transport", "buffered");
    for (String a : Arrays.copyOfRange(args, 1, args.length)) {
      String[] kv = a.replaceFirst("^--?", "").split("=", 2);
      if (kv.length != 2 || !flags.containsKey(kv[0])) {
        usage();
      }
      flags.put(kv[0], kv[1]);
    }
    TProtocolFactory pf;
    switch (flags.get("protocol")) {
      case "binary":
        pf = new TBinaryProtocol.Factory();
        break;
      case "compact":
        pf = new TCompactProtocol.Factory();
        break;
      default:
        throw new IllegalArgumentException("unknown protocol " + flags.get("protocol"));
    }
    boolean framed;
    switch (flags.get("transport")) {
      case "buffered":
        framed = false;
        break;
      case "framed":
        framed = true;
        break;
      default:
        throw new IllegalArgumentException("unknown transport " + flags.get("transport"));
    }
    String addr = flags.get("addr");
    int colon = addr.lastIndexOf(':');
    String host = addr.substring(0, colon);
    int port = Integer.parseInt(addr.substring(colon + 1));
    switch (args[0]) {
      case "server":
        serve(host, port, pf, framed);
        break;
      case "client":
        System.exit(call(host, port, pf, framed));
        break;
      default:
        usage();
    }
  }

  private static void usage() {
    System.err.println("usage: Peer server|client [--addr=H:P] [--protocol=P] [--transport=T]");
    System.exit(2);
  }

  // ===== server =====

  static Xtruct xtruct(String s, int b, int i, long l) {
    return new Xtruct(s, (byte) b, i, l);
  }

  static Map<Integer, Map<Integer, Integer>> mapMap() {
    Map<Integer, Integer> neg = new HashMap<>();
    Map<Integer, Integer> pos = new HashMap<>();
    for (int i = 1; i <= 4; i++) {
      neg.put(-i, -i);
      pos.put(i, i);
    }
    Map<Integer, Map<Integer, Integer>> m = new HashMap<>();
    m.put(-4, neg);
    m.put(4, pos);
    return m;
  }

  static Map<Long, Map<Numberz, Insanity>> insanityResult(Insanity a) {
    Map<Numberz, Insanity> first = new HashMap<>();
    first.put(Numberz.TWO, a);
    first.put(Numberz.THREE, a);
    Map<Numberz, Insanity> second = new HashMap<>();
    second.put(Numberz.SIX, new Insanity());
    Map<Long, Map<Numberz, Insanity>> m = new HashMap<>();
    m.put(1L, first);
    m.put(2L, second);
    return m;
  }

  /** ThriftTest as Apache's cross-test servers answer it. */
  static final class Handler implements ThriftTest.Iface {
    public void testVoid() {}

    public String testString(String v) {
      return v;
    }

    public boolean testBool(boolean v) {
      return v;
    }

    public byte testByte(byte v) {
      return v;
    }

    public int testI32(int v) {
      return v;
    }

    public long testI64(long v) {
      return v;
    }

    public double testDouble(double v) {
      return v;
    }

    public ByteBuffer testBinary(ByteBuffer v) {
      return v;
    }

    public Xtruct testStruct(Xtruct v) {
      return v;
    }

    public Xtruct2 testNest(Xtruct2 v) {
      return v;
    }

    public Map<Integer, Integer> testMap(Map<Integer, Integer> v) {
      return v;
    }

    public Map<String, String> testStringMap(Map<String, String> v) {
      return v;
    }

    public Set<Integer> testSet(Set<Integer> v) {
      return v;
    }

    public List<Integer> testList(List<Integer> v) {
      return v;
    }

    public Numberz testEnum(Numberz v) {
      return v;
    }

    public long testTypedef(long v) {
      return v;
    }

    public Map<Integer, Map<Integer, Integer>> testMapMap(int hello) {
      return mapMap();
    }

    public Map<Long, Map<Numberz, Insanity>> testInsanity(Insanity a) {
      return insanityResult(a);
    }

    public Xtruct testMulti(
        byte arg0, int arg1, long arg2, Map<Short, String> arg3, Numberz arg4, long arg5) {
      return xtruct("Hello2", arg0, arg1, arg2);
    }

    public void testException(String arg) throws TException {
      if (arg.equals("Xception")) {
        throw new Xception(1001, arg);
      } else if (arg.equals("TException")) {
        throw new TException("This is a TException");
      }
    }

    public Xtruct testMultiException(String arg0, String arg1) throws TException {
      if (arg0.equals("Xception")) {
        throw new Xception(1001, "This is an Xception");
      } else if (arg0.equals("Xception2")) {
        Xtruct x = new Xtruct();
        x.setString_thing("This is an Xception2");
        throw new Xception2(2002, x);
      }
      Xtruct x = new Xtruct();
      x.setString_thing(arg1);
      return x;
    }

    public void testOneway(int seconds) {
      try {
        Thread.sleep(seconds * 1000L);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  static void serve(String host, int port, TProtocolFactory pf, boolean framed)
      throws Exception {
    TServerSocket socket = new TServerSocket(new InetSocketAddress(host, port));
    TTransportFactory tf = framed ? new TFramedTransport.Factory() : new TTransportFactory();
    TServer server =
        new TSimpleServer(
            new TServer.Args(socket)
                .processor(new ThriftTest.Processor<>(new Handler()))
                .protocolFactory(pf)
                .transportFactory(tf));
    System.out.println("listening on " + host + ":" + socket.getServerSocket().getLocalPort());
    System.out.flush();
    server.serve();
  }

  // ===== client =====

  interface Call<T> {
    T run() throws Exception;
  }

  static final class Battery {
    final List<String> errors = new ArrayList<>();

    <T> T call(String method, Call<T> c) {
      try {
        return c.run();
      } catch (Exception e) {
        errors.add(method + ": " + e);
        return null;
      }
    }

    void eq(String method, Object got, Object want) {
      if (!Objects.equals(got, want)) {
        errors.add(method + ": got " + got + ", want " + want);
      }
    }

    <T> void check(String method, Call<T> c, Object want) {
      try {
        eq(method, c.run(), want);
      } catch (Exception e) {
        errors.add(method + ": " + e);
      }
    }
  }

  static List<String> battery(ThriftTest.Client c) {
    Battery k = new Battery();
    k.call("testVoid", () -> {
      c.testVoid();
      return null;
    });
    for (String s : new String[] {"", "Test", "ünicode ☃ 🦀", "x".repeat(10000)}) {
      k.check("testString", () -> c.testString(s), s);
    }
    for (boolean b : new boolean[] {true, false}) {
      k.check("testBool", () -> c.testBool(b), b);
    }
    for (byte n : new byte[] {1, 0, -1, Byte.MIN_VALUE, Byte.MAX_VALUE}) {
      k.check("testByte", () -> c.testByte(n), n);
    }
    for (int n : new int[] {-1, 0, 1, Integer.MIN_VALUE, Integer.MAX_VALUE}) {
      k.check("testI32", () -> c.testI32(n), n);
    }
    for (long n : new long[] {0, -34359738368L, Long.MIN_VALUE, Long.MAX_VALUE}) {
      k.check("testI64", () -> c.testI64(n), n);
    }
    for (double d :
        new double[] {
          -5.2098523, 0.0, -0.0, Double.MAX_VALUE, Double.MIN_VALUE, 1e-300, Double.POSITIVE_INFINITY
        }) {
      k.check(
          "testDouble",
          () -> Double.doubleToRawLongBits(c.testDouble(d)),
          Double.doubleToRawLongBits(d));
    }
    byte[] bin = new byte[256];
    for (int i = 0; i < 256; i++) {
      bin[i] = (byte) i;
    }
    k.check("testBinary", () -> c.testBinary(ByteBuffer.wrap(bin)), ByteBuffer.wrap(bin));
    Xtruct x = xtruct("Zero", 1, -3, -5);
    k.check("testStruct", () -> c.testStruct(x), x);
    Xtruct2 nest = new Xtruct2((byte) 1, x, 5);
    k.check("testNest", () -> c.testNest(nest), nest);
    Map<Integer, Integer> m = new HashMap<>();
    for (int i = 0; i < 5; i++) {
      m.put(i, i - 10);
    }
    k.check("testMap", () -> c.testMap(m), m);
    Map<String, String> sm = new LinkedHashMap<>();
    sm.put("a", "2");
    sm.put("b", "blah");
    sm.put("some", "thing");
    sm.put("ü", "☃");
    k.check("testStringMap", () -> c.testStringMap(sm), sm);
    Set<Integer> set = new TreeSet<>(Arrays.asList(-2, -1, 0, 1, 2));
    k.check("testSet", () -> new TreeSet<>(c.testSet(set)), set);
    List<Integer> list = Arrays.asList(-2, -1, 0, 1, 2, Integer.MAX_VALUE);
    k.check("testList", () -> c.testList(list), list);
    for (Numberz n :
        new Numberz[] {Numberz.ONE, Numberz.TWO, Numberz.THREE, Numberz.FIVE, Numberz.EIGHT}) {
      k.check("testEnum", () -> c.testEnum(n), n);
    }
    k.check("testTypedef", () -> c.testTypedef(309858235082523L), 309858235082523L);
    k.check("testMapMap", () -> c.testMapMap(1), mapMap());
    Insanity ins = new Insanity();
    Map<Numberz, Long> userMap = new HashMap<>();
    userMap.put(Numberz.FIVE, 5L);
    userMap.put(Numberz.EIGHT, 8L);
    ins.setUserMap(userMap);
    ins.setXtructs(Arrays.asList(xtruct("Goodbye4", 4, 4, 4), xtruct("Hello2", 2, 2, 2)));
    k.check("testInsanity", () -> c.testInsanity(ins), insanityResult(ins));
    Map<Short, String> arg3 = new HashMap<>();
    arg3.put((short) 1, "one");
    k.check("testMulti", () -> c.testMulti((byte) 1, 2, 3L, arg3, Numberz.TWO, 42L), xtruct("Hello2", 1, 2, 3));

    try {
      c.testException("Xception");
      k.errors.add("testException(Xception): no exception");
    } catch (Xception e) {
      k.eq("testException(Xception)", e.errorCode + "/" + e.message, "1001/Xception");
    } catch (Exception e) {
      k.errors.add("testException(Xception): got " + e);
    }
    try {
      c.testException("TException");
      k.errors.add("testException(TException): no exception");
    } catch (Xception e) {
      k.errors.add("testException(TException): got a declared exception");
    } catch (TException e) {
      // An undeclared error arrives as a TApplicationException.
    }
    k.call("testException(success)", () -> {
      c.testException("success");
      return null;
    });
    try {
      c.testMultiException("Xception", "ignored");
      k.errors.add("testMultiException(Xception): no exception");
    } catch (Xception e) {
      k.eq("testMultiException(Xception)", e.errorCode + "/" + e.message, "1001/This is an Xception");
    } catch (Exception e) {
      k.errors.add("testMultiException(Xception): got " + e);
    }
    try {
      c.testMultiException("Xception2", "ignored");
      k.errors.add("testMultiException(Xception2): no exception");
    } catch (Xception2 e) {
      k.eq(
          "testMultiException(Xception2)",
          e.errorCode + "/" + (e.struct_thing == null ? null : e.struct_thing.string_thing),
          "2002/This is an Xception2");
    } catch (Exception e) {
      k.errors.add("testMultiException(Xception2): got " + e);
    }
    Xtruct ok = k.call("testMultiException", () -> c.testMultiException("no exception", "test 3"));
    if (ok != null) {
      k.eq("testMultiException", ok.string_thing, "test 3");
    }

    long start = System.nanoTime();
    k.call("testOneway", () -> {
      c.testOneway(1);
      return null;
    });
    long ms = (System.nanoTime() - start) / 1_000_000;
    if (ms > 900) {
      k.errors.add("testOneway: took " + ms + " ms: the call waited");
    }
    k.call("testVoid after testOneway", () -> {
      c.testVoid();
      return null;
    });
    return k.errors;
  }

  static int call(String host, int port, TProtocolFactory pf, boolean framed) throws Exception {
    TTransport t = new TSocket(host, port, 30_000);
    if (framed) {
      t = new TFramedTransport(t);
    }
    try {
      t.open();
    } catch (TException e) {
      System.out.println("FAIL connect: " + e);
      return 1;
    }
    TProtocol p = pf.getProtocol(t);
    List<String> errors = battery(new ThriftTest.Client(p));
    t.close();
    for (String e : errors) {
      System.out.println("FAIL " + e);
    }
    if (!errors.isEmpty()) {
      return 1;
    }
    System.out.println("ok battery");
    return 0;
  }
}
