package weft_test

// These tests run against Weft Rust servers that ffi/tests/go.rs starts
// (`cargo test -p weft-ffi --test go` runs them with the race detector):
//   WEFT_ECHO_ADDR       weft-interop's Rust Echo server; every answer carries
//                        backward metainfo "deadline-remaining-ms", the time
//                        the server saw left before the call's deadline, and
//                        "caller", the caller's name.
//   WEFT_RELAY_ADDR      a Rust Echo service that forwards each call, with a
//                        Weft Rust client, to WEFT_GO_SERVER_ADDR.
//   WEFT_GO_SERVER_ADDR  where the Go server of these tests must listen.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
	"github.com/weft-rpc/weft/ffi/go/internal/echoserver"
	"github.com/weft-rpc/weft/ffi/go/internal/gen/echo"
	"github.com/weft-rpc/weft/ffi/go/weftthrift"
)

var rt *weft.Runtime

func TestMain(m *testing.M) {
	var err error
	if rt, err = weft.NewRuntime(2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	rt.Close()
	os.Exit(code)
}

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these tests with `cargo test -p weft-ffi --test go`", name)
	}
	return v
}

func client(t *testing.T, o weft.ClientOptions) *weft.Client {
	t.Helper()
	if o.Service == "" {
		o.Service = "Echo"
	}
	c, err := weft.NewClient(rt, o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func payload() *echo.Payload {
	name := "inner"
	return &echo.Payload{
		Text: "hello, wörld", Blob: []byte{0, 1, 2, 250, 255}, Count: math.MaxInt64 - 7,
		Ratio: math.Pi, Tags: []string{"a", "bb"}, Scores: map[string]int64{"alpha": 1, "omega": -(1 << 40)},
		Inner:    &echo.Inner{Name: name, Values: []int32{1, -2, math.MaxInt32}},
		Children: []*echo.Inner{{Name: "child", Values: []int32{}}},
		Labels:   []string{"x", "ünïcødé"}, Flag: true,
	}
}

func samePayload(t *testing.T, got, want *echo.Payload, what string) {
	t.Helper()
	// Sets come back in any order.
	g, w := *got, *want
	set := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, s := range l {
			m[s] = true
		}
		return m
	}
	if !reflect.DeepEqual(set(g.Labels), set(w.Labels)) {
		t.Fatalf("%s: labels %v, want %v", what, g.Labels, w.Labels)
	}
	g.Labels, w.Labels = nil, nil
	if !reflect.DeepEqual(&g, &w) {
		t.Fatalf("%s: got %+v\nwant %+v", what, &g, &w)
	}
}

var codecs = []struct {
	name      string
	transport weft.Transport
	protocol  weft.Protocol
	mode      weft.ConnectionMode
}{
	{"ttheader/binary", weft.TTHeader, weft.Binary, weft.DefaultConnections},
	{"ttheader/compact", weft.TTHeader, weft.Compact, weft.Multiplexed},
	{"framed/binary", weft.Framed, weft.Binary, weft.Pooled},
	{"framed/compact", weft.Framed, weft.Compact, weft.DefaultConnections},
	{"buffered/binary", weft.Buffered, weft.Binary, weft.DefaultConnections},
	{"theader/compact", weft.THeader, weft.Compact, weft.DefaultConnections},
}

// ===== a Go client, a Weft Rust server =====

func TestGoClientCallsRustServer(t *testing.T) {
	addr := env(t, "WEFT_ECHO_ADDR")
	for _, cc := range codecs {
		t.Run(cc.name, func(t *testing.T) {
			c := client(t, weft.ClientOptions{
				Addresses: []string{addr}, Transport: cc.transport, Protocol: cc.protocol,
				ConnectionMode: cc.mode, Timeout: 5 * time.Second, MaxAttempts: 2,
				LoadBalance: weft.RoundRobin, Idempotent: []string{"echo"},
			})
			ctx := context.Background()
			var res echo.EchoEchoResult
			if err := weftthrift.Call(ctx, c, "echo", &echo.EchoEchoArgs{Payload: payload()}, &res); err != nil {
				t.Fatalf("echo: %v", err)
			}
			samePayload(t, res.GetSuccess(), payload(), "echo")
			var sum echo.EchoAddResult
			if err := weftthrift.Call(ctx, c, "add", &echo.EchoAddArgs{A: 1 << 40, B: -1}, &sum); err != nil {
				t.Fatalf("add: %v", err)
			}
			if sum.GetSuccess() != 1<<40-1 {
				t.Fatalf("add: %d", sum.GetSuccess())
			}
		})
	}
}

func TestMetainfoGoesAndComesBack(t *testing.T) {
	// Consistent hashing on a metainfo key, with the other options set.
	c := client(t, weft.ClientOptions{
		Addresses: []string{env(t, "WEFT_ECHO_ADDR")}, LoadBalance: weft.ConsistentHash, HashKey: "trace",
		AttemptTimeout: 5 * time.Second, AllIdempotent: true, MaxAttempts: 3, RetryBudget: 0.5, DisableBreakers: true,
	})
	ctx := weft.WithPersistent(context.Background(), "trace", "t-1")
	ctx = weft.WithTransient(ctx, "hop", "h-1")
	ctx = weft.WithCaller(ctx, "go-tests")
	for key, want := range map[string]string{"trace": "t-1", "hop": "h-1", "absent": ""} {
		args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoMetainfoArgs{Key: key})
		reply, err := c.Call(ctx, "metainfo", args)
		if err != nil {
			t.Fatalf("metainfo %s: %v", key, err)
		}
		var res echo.EchoMetainfoResult
		if err := weftthrift.Decode(c.Protocol(), reply.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.GetSuccess() != want || reply.Backward["echo-"+key] != want {
			t.Fatalf("%s: got %q, backward %v; want %q", key, res.GetSuccess(), reply.Backward, want)
		}
		if reply.Backward["caller"] != "go-tests" {
			t.Fatalf("the server saw caller %q", reply.Backward["caller"])
		}
	}
}

// ===== deadlines and cancellation =====

func remainingSeen(t *testing.T, reply *weft.Reply) time.Duration {
	t.Helper()
	v, ok := reply.Backward["deadline-remaining-ms"]
	if !ok {
		t.Fatalf("the server reported no deadline; backward %v", reply.Backward)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ms) * time.Millisecond
}

func TestContextDeadlineReachesRustServer(t *testing.T) {
	// A client default far from the context's, so that only the
	// context's deadline can explain what the server sees.
	c := client(t, weft.ClientOptions{Addresses: []string{env(t, "WEFT_ECHO_ADDR")}, Timeout: 20 * time.Second})
	args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoPingArgs{})
	for _, timeout := range []time.Duration{1500 * time.Millisecond, 4 * time.Second} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		reply, err := c.Call(ctx, "ping", args)
		took := time.Since(start)
		cancel()
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		left := remainingSeen(t, reply)
		if left > timeout || left < timeout-took-200*time.Millisecond {
			t.Fatalf("context timeout %v: the server saw %v left (call took %v)", timeout, left, took)
		}
	}
	// Without a context deadline the client's default applies.
	reply, err := c.Call(context.Background(), "ping", args)
	if err != nil {
		t.Fatal(err)
	}
	if left := remainingSeen(t, reply); left > 20*time.Second || left < 19*time.Second {
		t.Fatalf("default timeout 20s: the server saw %v left", left)
	}
}

func TestContextDeadlineEndsTheCall(t *testing.T) {
	c := client(t, weft.ClientOptions{Addresses: []string{env(t, "WEFT_ECHO_ADDR")}})
	args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoSlowArgs{Payload: payload(), Millis: 5000})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, "slow", args)
	took := time.Since(start)
	if weft.CodeOf(err) != weft.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
	}
	if took > 1500*time.Millisecond {
		t.Fatalf("the call took %v past a 200ms deadline", took)
	}
	// An expired context is refused before anything is sent.
	if _, err := c.Call(ctx, "slow", args); weft.CodeOf(err) != weft.DeadlineExceeded {
		t.Fatalf("expired context: %v", err)
	}
}

func TestCancelReturnsPromptly(t *testing.T) {
	c := client(t, weft.ClientOptions{Addresses: []string{env(t, "WEFT_ECHO_ADDR")}})
	args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoSlowArgs{Payload: payload(), Millis: 5000})
	const n = 50
	live := weft.LiveHandles()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, n)
	var started sync.WaitGroup
	for range n {
		started.Add(1)
		go func() {
			started.Done()
			_, err := c.Call(ctx, "slow", args)
			errs <- err
		}()
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond)
	at := time.Now()
	cancel()
	for range n {
		select {
		case err := <-errs:
			var we *weft.Error
			if !errors.As(err, &we) || we.Code != weft.Cancelled || !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want CANCELLED", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a cancelled call did not return")
		}
	}
	if took := time.Since(at); took > 500*time.Millisecond {
		t.Fatalf("cancelled calls took %v to return", took)
	}
	// Weft ended them too (well before the server's 5 s answers): every
	// completion, context and buffer of theirs is freed.
	for weft.LiveHandles() > live {
		if time.Since(at) > time.Second {
			t.Fatalf("a second after the cancel, %d Weft objects of the calls are alive", weft.LiveHandles()-live)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Cancelled before the call: refused at once.
	if _, err := c.Call(ctx, "slow", args); weft.CodeOf(err) != weft.Cancelled {
		t.Fatalf("cancelled context: %v", err)
	}
}

// ===== concurrency =====

func TestThousandGoroutines(t *testing.T) {
	addr := env(t, "WEFT_ECHO_ADDR")
	for _, cc := range []struct {
		name string
		o    weft.ClientOptions
	}{
		{"multiplexed", weft.ClientOptions{Addresses: []string{addr}}},
		{"pooled-framed", weft.ClientOptions{Addresses: []string{addr}, Transport: weft.Framed, Protocol: weft.Compact}},
	} {
		t.Run(cc.name, func(t *testing.T) {
			c := client(t, cc.o)
			threads := pprof.Lookup("threadcreate").Count()
			const n = 1000
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					var res echo.EchoAddResult
					if err := weftthrift.Call(ctx, c, "add", &echo.EchoAddArgs{A: int64(i), B: int64(i) << 20}, &res); err != nil {
						errs <- err
						return
					}
					if res.GetSuccess() != int64(i)+int64(i)<<20 {
						errs <- fmt.Errorf("call %d: got %d", i, res.GetSuccess())
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Calls wait in channels, not in blocking C calls: 1,000 of them
			// in flight must not have made an OS thread each.
			made := pprof.Lookup("threadcreate").Count() - threads
			t.Logf("1,000 concurrent calls made %d OS threads", made)
			if made > 50 {
				t.Fatalf("1,000 concurrent calls made %d OS threads", made)
			}
		})
	}
}

// ===== declared exceptions and errors =====

func TestDeclaredExceptionFromRustServer(t *testing.T) {
	c := client(t, weft.ClientOptions{Addresses: []string{env(t, "WEFT_ECHO_ADDR")}})
	checkFail(t, c)
}

func checkFail(t *testing.T, c *weft.Client) {
	t.Helper()
	var res echo.EchoFailResult
	err := weftthrift.Call(context.Background(), c, "fail", &echo.EchoFailArgs{Code: 7, Message: "sold out"}, &res)
	var ex *weft.Exception
	if !errors.As(err, &ex) || ex.FieldID != 1 {
		t.Fatalf("fail: got %v, want the declared exception (field 1)", err)
	}
	var e echo.EchoError
	if err := weftthrift.DecodeException(c.Protocol(), ex, &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != 7 || e.Message != "sold out" || res.GetErr() == nil || res.GetErr().Message != "sold out" {
		t.Fatalf("exception %+v, result %+v", e, res)
	}
	// An undeclared error is a *weft.Error, not an exception.
	err = weftthrift.Call(context.Background(), c, "fail", &echo.EchoFailArgs{Code: -1, Message: "undeclared"}, &res)
	var we *weft.Error
	if !errors.As(err, &we) || we.Code != weft.Internal || errors.As(err, &ex) {
		t.Fatalf("undeclared: got %v, want INTERNAL", err)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	for _, o := range []weft.ClientOptions{
		{Addresses: []string{"not an address"}},
		{},
		{Addresses: []string{"127.0.0.1:1"}, LoadBalance: weft.ConsistentHash},
		{Addresses: []string{"127.0.0.1:1"}, Transport: 99},
	} {
		if _, err := weft.NewClient(rt, o); weft.CodeOf(err) != weft.InvalidArgument {
			t.Fatalf("options %+v: got %v, want INVALID_ARGUMENT", o, err)
		}
	}
	// Nothing listens on port 1.
	c := client(t, weft.ClientOptions{Addresses: []string{"127.0.0.1:1"}, Timeout: 3 * time.Second})
	args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoPingArgs{})
	if _, err := c.Call(context.Background(), "ping", args); weft.CodeOf(err) != weft.Unavailable {
		t.Fatalf("unreachable server: got %v, want UNAVAILABLE", err)
	}
	// Args that are not a struct are refused before anything is sent.
	c2 := client(t, weft.ClientOptions{Addresses: []string{env(t, "WEFT_ECHO_ADDR")}})
	if _, err := c2.Call(context.Background(), "ping", []byte{0xff, 0xff, 0xff}); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("garbage args: got %v", err)
	}
	if _, err := c2.Call(context.Background(), "", args); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("empty method: got %v", err)
	}
	// A freed client is refused by Weft, not dereferenced.
	c2.Close()
	_, err := c2.Call(context.Background(), "ping", args)
	var we *weft.Error
	if !errors.As(err, &we) || we.Code != weft.FailedPrecondition {
		t.Fatalf("freed client: got %v, want FAILED_PRECONDITION", err)
	}
	c2.Close()
	// A client that was never made is a null handle to Weft.
	if _, err := new(weft.Client).Call(context.Background(), "ping", args); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("zero client: got %v, want INVALID_ARGUMENT", err)
	}
	if _, err := weft.Serve(rt, "not an address", weft.HandlerFunc(func(context.Context, *weft.Call) {}), nil); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("Serve on a bad address: %v", err)
	}
}

func TestUnreachableClientIsFreed(t *testing.T) {
	live := weft.LiveHandles()
	func() {
		c, err := weft.NewClient(rt, weft.ClientOptions{Addresses: []string{env(t, "WEFT_ECHO_ADDR")}})
		if err != nil {
			t.Fatal(err)
		}
		args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoPingArgs{})
		if _, err := c.Call(context.Background(), "ping", args); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for weft.LiveHandles() > live {
		if time.Now().After(deadline) {
			t.Fatalf("an unreachable client was not freed: %d objects left", weft.LiveHandles()-live)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// ===== a Go server, a Weft Rust client =====

func TestGoServerAnswersRustClient(t *testing.T) {
	h := &echoserver.Handler{}
	srv, err := weft.Serve(rt, env(t, "WEFT_GO_SERVER_ADDR"), h, nil)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	defer func() {
		if err := srv.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}()
	// The relay's Rust client decodes the Go server's answers into its own
	// generated types and encodes them again: what comes back is what Weft
	// Rust understood.
	c := client(t, weft.ClientOptions{Addresses: []string{env(t, "WEFT_RELAY_ADDR")}})
	ctx := weft.WithPersistent(context.Background(), "trace", "via-rust")
	var res echo.EchoEchoResult
	if err := weftthrift.Call(ctx, c, "echo", &echo.EchoEchoArgs{Payload: payload()}, &res); err != nil {
		t.Fatalf("echo: %v", err)
	}
	samePayload(t, res.GetSuccess(), payload(), "echo through the relay")
	// Answered 300ms later from another goroutine.
	var slow echo.EchoSlowResult
	start := time.Now()
	if err := weftthrift.Call(ctx, c, "slow", &echo.EchoSlowArgs{Payload: payload(), Millis: 300}, &slow); err != nil {
		t.Fatalf("slow: %v", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("slow answered after %v", took)
	}
	samePayload(t, slow.GetSuccess(), payload(), "slow")
	var m echo.EchoMetainfoResult
	if err := weftthrift.Call(ctx, c, "metainfo", &echo.EchoMetainfoArgs{Key: "trace"}, &m); err != nil || m.GetSuccess() != "via-rust" {
		t.Fatalf("metainfo: %q, %v", m.GetSuccess(), err)
	}
	// A declared exception thrown in Go reaches the Rust client as the
	// declared exception, and comes back here as one.
	checkFail(t, c)
	// The context's deadline crossed both hops.
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var p echo.EchoPingResult
	if err := weftthrift.Call(tctx, c, "ping", &echo.EchoPingArgs{}, &p); err != nil {
		t.Fatalf("ping: %v", err)
	}
	want, _ := tctx.Deadline()
	seen := h.Seen()
	last := seen[len(seen)-1]
	// Each hop's deadline may move later by the frame's transit time: Weft
	// sends the time left when it encodes, the receiver counts from when it
	// decodes (see internal/cmd/meshserver).
	const transit = 25 * time.Millisecond
	if last.Method != "ping" || !last.HasDeadline || last.Deadline.After(want.Add(transit)) || last.Deadline.Before(want.Add(-time.Second)) {
		t.Fatalf("the Go server saw %+v; the client's deadline is %v", last, want)
	}
	if last.Persistent["trace"] != "via-rust" {
		t.Fatalf("persistent metainfo lost: %v", last.Persistent)
	}
}

func TestGoClientCallsGoServer(t *testing.T) {
	h := &echoserver.Handler{}
	srv, err := weft.Serve(rt, "127.0.0.1:0", h, &weft.ServerOptions{HandlerTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, cc := range codecs {
		c := client(t, weft.ClientOptions{Addresses: []string{srv.Addr()}, Transport: cc.transport, Protocol: cc.protocol})
		var res echo.EchoEchoResult
		if err := weftthrift.Call(context.Background(), c, "echo", &echo.EchoEchoArgs{Payload: payload()}, &res); err != nil {
			t.Fatalf("%s: %v", cc.name, err)
		}
		samePayload(t, res.GetSuccess(), payload(), cc.name)
		checkFail(t, c)
	}
	// An unknown method, and a handler that panics.
	c := client(t, weft.ClientOptions{Addresses: []string{srv.Addr()}})
	args, _ := weftthrift.Encode(c.Protocol(), &echo.EchoPingArgs{})
	if _, err := c.Call(context.Background(), "nope", args); weft.CodeOf(err) != weft.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
	// A second answer, and metainfo set after the answer, are refused; an
	// answer after the caller's deadline ended the call is refused by Weft.
	late := make(chan [3]error, 1)
	tsrv, err := weft.Serve(rt, "127.0.0.1:0", weft.HandlerFunc(func(ctx context.Context, call *weft.Call) {
		if call.Method == "late" {
			<-ctx.Done() // the caller's deadline
			time.Sleep(50 * time.Millisecond)
			late <- [3]error{call.Reply([]byte{0}), nil, nil}
			return
		}
		first := call.Reply([]byte{0})
		late <- [3]error{first, call.Fail(weft.Internal, "again"), call.SetBackward("k", "v")}
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tsrv.Close()
	tc := client(t, weft.ClientOptions{Addresses: []string{tsrv.Addr()}})
	if _, err := tc.Call(context.Background(), "ping", args); err != nil {
		t.Fatal(err)
	}
	if got := <-late; got[0] != nil || weft.CodeOf(got[1]) != weft.FailedPrecondition || weft.CodeOf(got[2]) != weft.FailedPrecondition {
		t.Fatalf("answer, second answer, backward after answer: %v", got)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer lcancel()
	if _, err := tc.Call(lctx, "late", args); weft.CodeOf(err) != weft.DeadlineExceeded {
		t.Fatalf("late: %v", err)
	}
	if got := <-late; got[0] == nil {
		t.Fatal("an answer after the call ended was accepted")
	}
	psrv, err := weft.Serve(rt, "127.0.0.1:0", weft.HandlerFunc(func(context.Context, *weft.Call) { panic("boom") }), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer psrv.Close()
	pc := client(t, weft.ClientOptions{Addresses: []string{psrv.Addr()}})
	if _, err := pc.Call(context.Background(), "ping", args); weft.CodeOf(err) != weft.Internal {
		t.Fatalf("panicking handler: %v", err)
	}
}
