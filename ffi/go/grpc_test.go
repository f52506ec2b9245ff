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
