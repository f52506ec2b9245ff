package weft_test

// gRPC through the Go binding, against the Weft Rust gRPC server
// (tests/interop's echo.proto) that ffi/tests/go.rs starts at
// WEFT_GRPC_ADDR. The messages are encoded by hand here, as a Go program's
// protobuf library would.

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
)

const grpcUnary = "/weft.interop.echo.Echo/Unary"

// echoRequest encodes EchoRequest{message: 1, code: 3}.
func echoRequest(message string, code int) []byte {
	b := []byte{0x0a}
	b = binary.AppendUvarint(b, uint64(len(message)))
	b = append(b, message...)
	if code != 0 {
		b = append(b, 0x18)
		b = binary.AppendUvarint(b, uint64(code))
	}
	return b
}

// replyMessage decodes field 1 of an EchoReply.
func replyMessage(t *testing.T, b []byte) string {
	t.Helper()
	for len(b) > 0 {
		tag := b[0]
		b = b[1:]
		if tag&7 == 0 {
			_, n := binary.Uvarint(b)
			b = b[n:]
			continue
		}
		l, n := binary.Uvarint(b)
		if tag&7 != 2 || n <= 0 || int(l) > len(b)-n {
			t.Fatalf("not an EchoReply: % x", b)
		}
		if tag == 0x0a {
			return string(b[n : n+int(l)])
		}
		b = b[n+int(l):]
	}
	return ""
}

func TestGRPCUnaryCalls(t *testing.T) {
	addr := env(t, "WEFT_GRPC_ADDR")
	if _, err := weft.NewClient(rt, weft.ClientOptions{Addresses: []string{addr}, Transport: weft.GRPC}); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("gRPC with binary: %v", err)
	}
	c := client(t, weft.ClientOptions{Addresses: []string{addr}, Transport: weft.GRPC, Protocol: weft.Protobuf})
	ctx := weft.WithPersistent(context.Background(), "tenant", "blue")
	r, err := c.Call(ctx, grpcUnary, echoRequest("hello, go", 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := replyMessage(t, r.Result); got != "hello, go" {
		t.Fatalf("echoed %q", got)
	}
	if !bytes.Contains(r.Result, []byte("persist:tenant")) {
		t.Fatalf("the server did not see the persistent metainfo: %q", r.Result)
	}
	if _, err := c.Call(context.Background(), grpcUnary, echoRequest("gone", int(weft.NotFound))); weft.CodeOf(err) != weft.NotFound {
		t.Fatalf("a status: %v", err)
	}
	if _, err := c.Call(context.Background(), "Unary", nil); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("a bad path: %v", err)
	}
	// A context deadline ends a slow call (sleep_ms, field 4).
	slow := append(echoRequest("slow", 0), 0x20, 0xb8, 0x17) // 3000 ms
	dctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Call(dctx, grpcUnary, slow); weft.CodeOf(err) != weft.DeadlineExceeded {
		t.Fatalf("slow: %v", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Call(context.Background(), grpcUnary, echoRequest("many", 0))
			if err != nil || replyMessage(t, r.Result) != "many" {
				t.Errorf("concurrent call: %v", err)
			}
		}()
	}
	wg.Wait()
}

// varintField decodes the varint field with key tag from a message of
// varint and length-delimited fields; 0 when absent.
func varintField(b []byte, tag byte) uint64 {
	for len(b) > 0 {
		key := b[0]
		b = b[1:]
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0
		}
		b = b[n:]
		if key&7 == 0 {
			if key == tag {
				return v
			}
			continue
		}
		if key&7 != 2 || v > uint64(len(b)) {
			return 0
		}
		b = b[v:]
	}
	return 0
}

// echoReply encodes EchoReply{message: 1, timeout_ms: 4}.
func echoReply(message string, timeoutMs int64) []byte {
	b := []byte{0x0a}
	b = binary.AppendUvarint(b, uint64(len(message)))
	b = append(b, message...)
	if timeoutMs > 0 {
		b = append(b, 0x20)
		b = binary.AppendUvarint(b, uint64(timeoutMs))
	}
	return b
}

// A Go handler served as gRPC through the shim, called by the binding's
// Weft gRPC client: replies, statuses, the deadline and persistent
// metainfo across, garbage refused, unknown methods and services and
// oversize requests refused, many calls at once.
func TestGRPCServerWithAGoHandler(t *testing.T) {
	garbage := make(chan error, 1)
	h := weft.HandlerFunc(func(ctx context.Context, call *weft.Call) {
		if call.Protocol != weft.Protobuf || call.Service != "weft.interop.echo.Echo" {
			_ = call.Fail(weft.Internal, "not a gRPC call of Echo: "+call.Service)
			return
		}
		if call.Method != grpcUnary {
			_ = call.Fail(weft.Unimplemented, "no method "+call.Method)
			return
		}
		msg := replyMessage(t, call.Args)
		switch {
		case msg == "garbage":
			garbage <- call.Reply([]byte{0x0a, 0x7f, 'x'})
		case varintField(call.Args, 0x18) != 0:
			_ = call.Fail(weft.NotFound, "echo status: "+msg)
		default:
			var ms int64
			if d, ok := ctx.Deadline(); ok {
				ms = time.Until(d).Milliseconds()
			}
			tenant, _ := weft.Persistent(ctx, "tenant")
			_ = call.SetBackward("echo-tenant", tenant)
			_ = call.Reply(echoReply(msg+"/"+tenant, ms))
		}
	})
	if _, err := weft.Serve(rt, "127.0.0.1:0", h, &weft.ServerOptions{GRPCServices: []string{"not a name"}}); weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("a malformed service name: %v", err)
	}
	s, err := weft.Serve(rt, "127.0.0.1:0", h, &weft.ServerOptions{
		GRPCServices:   []string{"weft.interop.echo.Echo"},
		GRPCMaxMessage: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	c := client(t, weft.ClientOptions{Addresses: []string{s.Addr()}, Transport: weft.GRPC, Protocol: weft.Protobuf})

	ctx, cancel := context.WithTimeout(weft.WithPersistent(context.Background(), "tenant", "blue"), 2*time.Second)
	defer cancel()
	r, err := c.Call(ctx, grpcUnary, echoRequest("hello", 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := replyMessage(t, r.Result); got != "hello/blue" {
		t.Fatalf("echoed %q", got)
	}
	if r.Backward["echo-tenant"] != "blue" {
		t.Fatalf("backward metainfo %v", r.Backward)
	}
	// The deadline reached the Go handler: timeout_ms (field 4) is set.
	if ms := varintField(r.Result, 0x20); ms == 0 || ms > 2000 {
		t.Fatalf("the handler saw a deadline of %d ms", ms)
	}

	if _, err := c.Call(context.Background(), grpcUnary, echoRequest("gone", 5)); weft.CodeOf(err) != weft.NotFound || err.(*weft.Error).Message != "echo status: gone" {
		t.Fatalf("a status: %v", err)
	}
	if _, err := c.Call(context.Background(), grpcUnary, echoRequest("garbage", 0)); weft.CodeOf(err) != weft.Internal {
		t.Fatalf("a garbage reply: %v", err)
	}
	if _, err := c.Call(context.Background(), "/weft.interop.echo.Echo/Nope", nil); weft.CodeOf(err) != weft.Unimplemented {
		t.Fatalf("an unknown method: %v", err)
	}
	if _, err := c.Call(context.Background(), "/other.Service/Unary", nil); weft.CodeOf(err) != weft.Unimplemented {
		t.Fatalf("an unknown service: %v", err)
	}
	if _, err := c.Call(context.Background(), grpcUnary, echoRequest(string(make([]byte, 4096)), 0)); weft.CodeOf(err) != weft.ResourceExhausted {
		t.Fatalf("an oversize request: %v", err)
	}
	if err := <-garbage; weft.CodeOf(err) != weft.InvalidArgument {
		t.Fatalf("the garbage reply, in Go: %v", err)
	}

	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Call(context.Background(), grpcUnary, echoRequest("many", 0))
			if err != nil || replyMessage(t, r.Result) != "many/" {
				t.Errorf("concurrent call: %v", err)
			}
		}()
	}
	wg.Wait()
}
