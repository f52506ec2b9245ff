// Command apache-peer is a ThriftTest server or client on Apache Thrift's Go
// library (github.com/apache/thrift/lib/go), for Weft's interop tests, with
// the flags of Apache's cross-test programs:
//
//	apache-peer server -protocol P -transport T      prints "listening on ADDR"
//	apache-peer client -addr ADDR -protocol P -transport T
//
// P is binary, compact, header (THeader, binary inside) or header-compact;
// T is buffered or framed (ignored for THeader, which frames itself). The
// client runs every method, prints "FAIL method: why" for each failure and
// exits 1 when there is any.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"weftinterop/gen-go/thrifttest"
	battery "weftinterop/internal/abattery"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: apache-peer server|client [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on or call")
	protocol := fs.String("protocol", "binary", "binary, compact, header or header-compact")
	trans := fs.String("transport", "buffered", "buffered or framed")
	fs.Parse(os.Args[2:])
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 30 * time.Second}
	pf, tf, err := factories(*protocol, *trans, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		if err := serve(*addr, pf, tf); err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
	case "client":
		os.Exit(call(*addr, pf, tf, cfg))
	default:
		fmt.Fprintln(os.Stderr, "usage: apache-peer server|client [flags]")
		os.Exit(2)
	}
}

func factories(protocol, trans string, cfg *thrift.TConfiguration) (thrift.TProtocolFactory, thrift.TTransportFactory, error) {
	switch protocol {
	case "binary":
	case "compact":
	case "header":
		return thrift.NewTHeaderProtocolFactoryConf(cfg), thrift.NewTTransportFactory(), nil
	case "header-compact":
		c := *cfg
		c.THeaderProtocolID = thrift.THeaderProtocolIDPtrMust(thrift.THeaderProtocolCompact)
		return thrift.NewTHeaderProtocolFactoryConf(&c), thrift.NewTTransportFactory(), nil
	default:
		return nil, nil, fmt.Errorf("unknown protocol %q", protocol)
	}
	var pf thrift.TProtocolFactory = thrift.NewTBinaryProtocolFactoryConf(cfg)
	if protocol == "compact" {
		pf = thrift.NewTCompactProtocolFactoryConf(cfg)
	}
	switch trans {
	case "buffered":
		return pf, thrift.NewTBufferedTransportFactory(8192), nil
	case "framed":
		return pf, thrift.NewTFramedTransportFactoryConf(thrift.NewTTransportFactory(), cfg), nil
	}
	return nil, nil, fmt.Errorf("unknown transport %q", trans)
}

// ===== server =====

type handler struct{}

func (handler) TestVoid(ctx context.Context) error                                 { return nil }
func (handler) TestString(ctx context.Context, v string) (string, error)           { return v, nil }
func (handler) TestBool(ctx context.Context, v bool) (bool, error)                 { return v, nil }
func (handler) TestByte(ctx context.Context, v int8) (int8, error)                 { return v, nil }
func (handler) TestI32(ctx context.Context, v int32) (int32, error)                { return v, nil }
func (handler) TestI64(ctx context.Context, v int64) (int64, error)                { return v, nil }
func (handler) TestDouble(ctx context.Context, v float64) (float64, error)         { return v, nil }
func (handler) TestBinary(ctx context.Context, v []byte) ([]byte, error)           { return v, nil }
func (handler) TestUuid(ctx context.Context, v thrift.Tuuid) (thrift.Tuuid, error) { return v, nil }
func (handler) TestStruct(ctx context.Context, v *thrifttest.Xtruct) (*thrifttest.Xtruct, error) {
	return v, nil
}
func (handler) TestNest(ctx context.Context, v *thrifttest.Xtruct2) (*thrifttest.Xtruct2, error) {
	return v, nil
}
func (handler) TestMap(ctx context.Context, v map[int32]int32) (map[int32]int32, error) {
	return v, nil
}
func (handler) TestStringMap(ctx context.Context, v map[string]string) (map[string]string, error) {
	return v, nil
}
func (handler) TestSet(ctx context.Context, v []int32) ([]int32, error)  { return v, nil }
func (handler) TestList(ctx context.Context, v []int32) ([]int32, error) { return v, nil }
func (handler) TestEnum(ctx context.Context, v thrifttest.Numberz) (thrifttest.Numberz, error) {
	return v, nil
}
func (handler) TestTypedef(ctx context.Context, v thrifttest.UserId) (thrifttest.UserId, error) {
	return v, nil
}
func (handler) TestMapMap(ctx context.Context, hello int32) (map[int32]map[int32]int32, error) {
	return battery.MapMap(), nil
}
func (handler) TestInsanity(ctx context.Context, a *thrifttest.Insanity) (map[thrifttest.UserId]map[thrifttest.Numberz]*thrifttest.Insanity, error) {
	return battery.InsanityResult(a), nil
}
func (handler) TestMulti(ctx context.Context, arg0 int8, arg1 int32, arg2 int64, arg3 map[int16]string, arg4 thrifttest.Numberz, arg5 thrifttest.UserId) (*thrifttest.Xtruct, error) {
	return battery.MkXtruct("Hello2", arg0, arg1, arg2), nil
}
func (handler) TestException(ctx context.Context, arg string) error {
	switch arg {
	case "Xception":
		return &thrifttest.Xception{ErrorCode: 1001, Message: arg}
	case "TException":
		return errors.New("This is a TException")
	}
	return nil
}
func (handler) TestMultiException(ctx context.Context, arg0, arg1 string) (*thrifttest.Xtruct, error) {
	switch arg0 {
	case "Xception":
		return nil, &thrifttest.Xception{ErrorCode: 1001, Message: "This is an Xception"}
	case "Xception2":
		return nil, &thrifttest.Xception2{ErrorCode: 2002, StructThing: &thrifttest.Xtruct{StringThing: "This is an Xception2"}}
	}
	return &thrifttest.Xtruct{StringThing: arg1}, nil
}
func (handler) TestOneway(ctx context.Context, seconds int32) error {
	time.Sleep(time.Duration(seconds) * time.Second)
	return nil
}

func serve(addr string, pf thrift.TProtocolFactory, tf thrift.TTransportFactory) error {
	sock, err := thrift.NewTServerSocket(addr)
	if err != nil {
		return err
	}
	if err := sock.Listen(); err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", sock.Addr())
	srv := thrift.NewTSimpleServer4(thrifttest.NewThriftTestProcessor(handler{}), sock, tf, pf)
	return srv.Serve()
}

// ===== client =====

func call(addr string, pf thrift.TProtocolFactory, tf thrift.TTransportFactory, cfg *thrift.TConfiguration) int {
	sock := thrift.NewTSocketConf(addr, cfg)
	t, err := tf.GetTransport(sock)
	if err != nil {
		fmt.Println("FAIL transport:", err)
		return 1
	}
	if err := t.Open(); err != nil {
		fmt.Println("FAIL connect:", err)
		return 1
	}
	defer t.Close()
	c := thrifttest.NewThriftTestClientFactory(t, pf)
	fails := battery.Run(c)
	for _, f := range fails {
		fmt.Println("FAIL " + f)
	}
	if len(fails) > 0 {
		return 1
	}
	fmt.Println("ok battery")
	return 0
}
