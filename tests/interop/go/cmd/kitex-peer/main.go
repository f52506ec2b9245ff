// Command kitex-peer is a Kitex ThriftTest server or client for Weft's
// interop tests.
//
//	kitex-peer server [-mux] [-etcd URL -service NAME]   prints "listening on ADDR"
//	kitex-peer client (-addr ADDR | -etcd URL -service NAME) [-mode pool|mux] -case CASE
//
// With -etcd the server registers in etcd with Kitex's own etcd registry
// (github.com/kitex-contrib/registry-etcd) and prints "registered" once
// its key is there, and the client finds the server with that registry's
// resolver instead of a fixed address.
//
// The server answers every ThriftTest method as Apache's cross-test servers
// do, and testString arguments of the form "meta", "biz:CODE",
// "bizplain:CODE" and "sleep:MS" report what the call carried, return a business status error,
// or sleep. The client runs one case against a server that does the same
// (Weft's, in the Rust tests), prints "FAIL method: why" for each failure
// and exits 1 when there is any.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bytedance/gopkg/cloud/metainfo"
	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/client/callopt"
	"github.com/cloudwego/kitex/pkg/connpool"
	"github.com/cloudwego/kitex/pkg/kerrors"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
	"github.com/cloudwego/kitex/pkg/transmeta"
	"github.com/cloudwego/kitex/server"
	"github.com/cloudwego/kitex/transport"
	etcd "github.com/kitex-contrib/registry-etcd"
	clientv3 "go.etcd.io/etcd/client/v3"

	"weftinterop/internal/battery"
	tt "weftinterop/kitex_gen/thrifttest"
	"weftinterop/kitex_gen/thrifttest/thrifttest"
)

// Names both sides check: Kitex's caller and callee service names.
const (
	clientName = "kitex-interop-client"
	serverName = "kitex-interop-server"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kitex-peer server|client [flags]")
		os.Exit(2)
	}
	klog.SetLevel(klog.LevelWarn)
	switch os.Args[1] {
	case "server":
		runServer(os.Args[2:])
	case "client":
		os.Exit(runClient(os.Args[2:]))
	default:
		fmt.Fprintln(os.Stderr, "usage: kitex-peer server|client [flags]")
		os.Exit(2)
	}
}

// ===== server =====

// Report is what a "meta" call saw, as JSON; the Weft server answers with
// the same shape.
type Report struct {
	Caller     string            `json:"caller"`
	Service    string            `json:"service"`
	Method     string            `json:"method"`
	Persistent map[string]string `json:"persistent"`
	Transient  map[string]string `json:"transient"`
	// The RPC timeout the call stated, in milliseconds (0: none).
	TimeoutMs int64 `json:"timeout_ms"`
}

type handler struct{}

func (handler) TestVoid(ctx context.Context) error { return nil }

func (handler) TestString(ctx context.Context, thing string) (string, error) {
	switch {
	case thing == "meta":
		ri := rpcinfo.GetRPCInfo(ctx)
		r := Report{
			Caller:     ri.From().ServiceName(),
			Service:    ri.Invocation().ServiceName(),
			Method:     ri.Invocation().MethodName(),
			Persistent: metainfo.GetAllPersistentValues(ctx),
			Transient:  metainfo.GetAllValues(ctx),
			TimeoutMs:  ri.Config().RPCTimeout().Milliseconds(),
		}
		// Never null in the JSON: the other side expects objects.
		if r.Persistent == nil {
			r.Persistent = map[string]string{}
		}
		if r.Transient == nil {
			r.Transient = map[string]string{}
		}
		if !metainfo.SendBackwardValue(ctx, "from-kitex", "back-"+ri.From().ServiceName()) {
			return "", errors.New("backward metainfo not enabled on the server context")
		}
		b, err := json.Marshal(r)
		return string(b), err
	case strings.HasPrefix(thing, "biz:"):
		code, err := strconv.Atoi(strings.TrimPrefix(thing, "biz:"))
		if err != nil {
			return "", err
		}
		return "", kerrors.NewBizStatusErrorWithExtra(int32(code), "biz from kitex",
			map[string]string{"k": "v", "quote": `a"b`})
	case strings.HasPrefix(thing, "bizplain:"):
		code, err := strconv.Atoi(strings.TrimPrefix(thing, "bizplain:"))
		if err != nil {
			return "", err
		}
		return "", kerrors.NewBizStatusError(int32(code), "plain biz from kitex")
	case strings.HasPrefix(thing, "sleep:"):
		ms, err := strconv.Atoi(strings.TrimPrefix(thing, "sleep:"))
		if err != nil {
			return "", err
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return thing, nil
	}
	return thing, nil
}

func (handler) TestBool(ctx context.Context, v bool) (bool, error)         { return v, nil }
func (handler) TestByte(ctx context.Context, v int8) (int8, error)         { return v, nil }
func (handler) TestI32(ctx context.Context, v int32) (int32, error)        { return v, nil }
func (handler) TestI64(ctx context.Context, v int64) (int64, error)        { return v, nil }
func (handler) TestDouble(ctx context.Context, v float64) (float64, error) { return v, nil }
func (handler) TestBinary(ctx context.Context, v []byte) ([]byte, error)   { return v, nil }
func (handler) TestStruct(ctx context.Context, v *tt.Xtruct) (*tt.Xtruct, error) {
	return v, nil
}
func (handler) TestNest(ctx context.Context, v *tt.Xtruct2) (*tt.Xtruct2, error) {
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
func (handler) TestEnum(ctx context.Context, v tt.Numberz) (tt.Numberz, error) {
	return v, nil
}
func (handler) TestTypedef(ctx context.Context, v tt.UserId) (tt.UserId, error) {
	return v, nil
}

func (handler) TestMapMap(ctx context.Context, hello int32) (map[int32]map[int32]int32, error) {
	return battery.MapMap(), nil
}

func (handler) TestInsanity(ctx context.Context, a *tt.Insanity) (map[tt.UserId]map[tt.Numberz]*tt.Insanity, error) {
	return battery.InsanityResult(a), nil
}

func (handler) TestMulti(ctx context.Context, arg0 int8, arg1 int32, arg2 int64, arg3 map[int16]string, arg4 tt.Numberz, arg5 tt.UserId) (*tt.Xtruct, error) {
	return battery.MkXtruct("Hello2", arg0, arg1, arg2), nil
}

func (handler) TestException(ctx context.Context, arg string) error {
	switch arg {
	case "Xception":
		return &tt.Xception{ErrorCode: 1001, Message: arg}
	case "TException":
		return errors.New("This is a TException")
	}
	return nil
}

func (handler) TestMultiException(ctx context.Context, arg0, arg1 string) (*tt.Xtruct, error) {
	switch arg0 {
	case "Xception":
		return nil, &tt.Xception{ErrorCode: 1001, Message: "This is an Xception"}
	case "Xception2":
		return nil, &tt.Xception2{ErrorCode: 2002, StructThing: &tt.Xtruct{StringThing: "This is an Xception2"}}
	}
	return &tt.Xtruct{StringThing: arg1}, nil
}

func (handler) TestOneway(ctx context.Context, seconds int32) error {
	time.Sleep(time.Duration(seconds) * time.Second)
	return nil
}

func runServer(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	mux := fs.Bool("mux", false, "serve with Kitex's multiplexed transport")
	etcdURL := fs.String("etcd", "", "register in the etcd at this URL with registry-etcd")
	service := fs.String("service", serverName, "the service name to serve (and register) as")
	fs.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	opts := []server.Option{
		server.WithListener(ln),
		server.WithMetaHandler(transmeta.ServerTTHeaderHandler),
		server.WithServerBasicInfo(&rpcinfo.EndpointBasicInfo{ServiceName: *service}),
		server.WithEnableContextTimeout(true),
		server.WithExitWaitTime(100 * time.Millisecond),
	}
	if *mux {
		opts = append(opts, server.WithMuxTransport())
	}
	if *etcdURL != "" {
		r, err := etcd.NewEtcdRegistry([]string{*etcdURL})
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd registry:", err)
			os.Exit(1)
		}
		opts = append(opts, server.WithRegistry(r))
		go announceRegistered(*etcdURL, *service, ln.Addr().String())
	}
	svr := thrifttest.NewServer(&handler{}, opts...)
	// Kitex accepts once Run has started its listener; print after a brief
	// settle so a caller connecting at once finds it serving.
	go func() {
		time.Sleep(50 * time.Millisecond)
		fmt.Printf("listening on %s\n", ln.Addr())
	}()
	if err := svr.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// announceRegistered prints "registered" once registry-etcd's key for
// this server is in etcd (Kitex registers a second after it starts), so
// that the test looks for it only then.
func announceRegistered(url, service, addr string) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return
	}
	defer c.Close()
	key := "kitex/registry-etcd/" + service + "/" + addr
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := c.Get(ctx, key)
		cancel()
		if err == nil && len(resp.Kvs) > 0 {
			fmt.Printf("registered %s\n", resp.Kvs[0].Value)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "etcd: the server's key", key, "never appeared")
}

// ===== client =====

func runClient(args []string) int {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "server host:port")
	etcdURL := fs.String("etcd", "", "find the server in the etcd at this URL with registry-etcd's resolver")
	service := fs.String("service", "weft-interop-server", "the service to call (and look up in etcd)")
	mode := fs.String("mode", "pool", "pool (Kitex's long-connection pool) or mux (multiplexed)")
	which := fs.String("case", "battery", "battery, concurrent, meta, deadline, names or biz")
	fs.Parse(args)

	opts := []client.Option{
		client.WithMetaHandler(transmeta.ClientTTHeaderHandler),
		client.WithClientBasicInfo(&rpcinfo.EndpointBasicInfo{ServiceName: clientName}),
		client.WithRPCTimeout(10 * time.Second),
		client.WithConnectTimeout(2 * time.Second),
	}
	switch *mode {
	case "pool":
		opts = append(opts,
			client.WithTransportProtocol(transport.TTHeaderFramed),
			client.WithLongConnection(connpool.IdleConfig{
				MaxIdlePerAddress: 8, MaxIdleGlobal: 64, MaxIdleTimeout: time.Minute,
			}))
	case "mux":
		// Sets TTHeader itself.
		opts = append(opts, client.WithMuxConnection(2))
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", *mode)
		return 2
	}
	if *etcdURL != "" {
		r, err := etcd.NewEtcdResolver([]string{*etcdURL})
		if err != nil {
			fmt.Println("FAIL etcd resolver:", err)
			return 1
		}
		opts = append(opts, client.WithResolver(r))
	} else {
		opts = append(opts, client.WithHostPorts(*addr))
	}
	c, err := thrifttest.NewClient(*service, opts...)
	if err != nil {
		fmt.Println("FAIL client:", err)
		return 1
	}
	var fails []string
	switch *which {
	case "battery":
		fails = battery.Run(c)
	case "concurrent":
		fails = battery.Concurrent(c, 64)
	case "meta":
		fails = caseMeta(c)
	case "deadline":
		fails = caseDeadline(c, opts)
	case "names":
		fails = caseNames(c)
	case "biz":
		fails = caseBiz(c)
	default:
		fmt.Fprintf(os.Stderr, "unknown case %q\n", *which)
		return 2
	}
	for _, f := range fails {
		fmt.Println("FAIL " + f)
	}
	if len(fails) > 0 {
		return 1
	}
	fmt.Println("ok " + *which)
	return 0
}

func meta(ctx context.Context, c thrifttest.Client) (Report, error) {
	var r Report
	s, err := c.TestString(ctx, "meta")
	if err != nil {
		return r, err
	}
	err = json.Unmarshal([]byte(s), &r)
	return r, err
}

// Persistent and transient values reach the server, a backward value comes
// back, and a transient value does not come back as anything else.
func caseMeta(c thrifttest.Client) []string {
	var e []string
	ctx := metainfo.WithPersistentValue(context.Background(), "tenant", "blue")
	ctx = metainfo.WithValue(ctx, "hop", "first")
	ctx = metainfo.WithBackwardValues(ctx)
	r, err := meta(ctx, c)
	if err != nil {
		return []string{"testString(meta): " + err.Error()}
	}
	if got := r.Persistent["tenant"]; got != "blue" {
		e = append(e, fmt.Sprintf("testString(meta): persistent tenant = %q, want blue (%+v)", got, r.Persistent))
	}
	if got := r.Transient["hop"]; got != "first" {
		e = append(e, fmt.Sprintf("testString(meta): transient hop = %q, want first (%+v)", got, r.Transient))
	}
	if _, ok := r.Persistent["hop"]; ok {
		e = append(e, "testString(meta): the transient value arrived as persistent")
	}
	if got, _ := metainfo.GetBackwardValue(ctx, "from-weft"); got != "back-"+clientName {
		e = append(e, fmt.Sprintf("testString(meta): backward from-weft = %q, want %q (%v)", got, "back-"+clientName, metainfo.RecvAllBackwardValues(ctx)))
	}
	return e
}

// The RPC timeout travels in the TTHeader, and a call that outlives it ends
// with Kitex's timeout error at about that time.
func caseDeadline(c thrifttest.Client, opts []client.Option) []string {
	var e []string
	// The client's 10 s default, as the server saw it.
	r, err := meta(context.Background(), c)
	if err != nil {
		return []string{"testString(meta): " + err.Error()}
	}
	if r.TimeoutMs <= 9000 || r.TimeoutMs > 10000 {
		e = append(e, fmt.Sprintf("testString(meta): server saw timeout %d ms, want (9000, 10000]", r.TimeoutMs))
	}
	// A per-call timeout.
	ctx := context.Background()
	s, err := c.TestString(ctx, "meta", callopt.WithRPCTimeout(1500*time.Millisecond))
	if err != nil {
		e = append(e, "testString(meta) with a 1.5 s timeout: "+err.Error())
	} else if json.Unmarshal([]byte(s), &r) != nil || r.TimeoutMs <= 1000 || r.TimeoutMs > 1500 {
		e = append(e, fmt.Sprintf("testString(meta): server saw %s, want a timeout in (1000, 1500] ms", s))
	}
	start := time.Now()
	_, err = c.TestString(ctx, "sleep:2000", callopt.WithRPCTimeout(300*time.Millisecond))
	took := time.Since(start)
	if !errors.Is(err, kerrors.ErrRPCTimeout) {
		e = append(e, fmt.Sprintf("testString(sleep:2000) with a 300 ms timeout: got %v, want Kitex's RPC timeout", err))
	}
	if took > 1500*time.Millisecond {
		e = append(e, fmt.Sprintf("testString(sleep:2000) with a 300 ms timeout took %v", took))
	}
	// The connection is still good for the next call.
	if _, err := c.TestString(ctx, "after"); err != nil {
		e = append(e, "testString after a timeout: "+err.Error())
	}
	return e
}

// The server sees this client's service name as the caller, and the IDL
// service and method it called.
func caseNames(c thrifttest.Client) []string {
	r, err := meta(context.Background(), c)
	if err != nil {
		return []string{"testString(meta): " + err.Error()}
	}
	var e []string
	if r.Caller != clientName {
		e = append(e, fmt.Sprintf("testString(meta): caller %q, want %q", r.Caller, clientName))
	}
	if r.Service != "ThriftTest" || r.Method != "testString" {
		e = append(e, fmt.Sprintf("testString(meta): callee %q.%q, want ThriftTest.testString", r.Service, r.Method))
	}
	return e
}

// A business status error from the server arrives as Kitex's
// BizStatusError with its code, message and extra.
func caseBiz(c thrifttest.Client) []string {
	_, err := c.TestString(context.Background(), "biz:4001")
	be, ok := kerrors.FromBizStatusError(err)
	if !ok {
		return []string{fmt.Sprintf("testString(biz:4001): got %v (%T), want a BizStatusError", err, err)}
	}
	var e []string
	if be.BizStatusCode() != 4001 || be.BizMessage() != "biz from weft" {
		e = append(e, fmt.Sprintf("testString(biz:4001): got code %d message %q", be.BizStatusCode(), be.BizMessage()))
	}
	if x := be.BizExtra(); x["k"] != "v" || x["quote"] != `a"b` || len(x) != 2 {
		e = append(e, fmt.Sprintf("testString(biz:4001): got extra %v", x))
	}
	// Without extra, and the connection still serves calls.
	_, err = c.TestString(context.Background(), "bizplain:7")
	if be, ok := kerrors.FromBizStatusError(err); !ok || be.BizStatusCode() != 7 || be.BizMessage() != "plain biz from weft" || len(be.BizExtra()) != 0 {
		e = append(e, fmt.Sprintf("testString(biz:7): got %v", err))
	}
	if v, err := c.TestString(context.Background(), "plain"); err != nil || v != "plain" {
		e = append(e, fmt.Sprintf("testString after a biz error: %q, %v", v, err))
	}
	return e
}
