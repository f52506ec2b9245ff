// Package echoserver is the Echo service (tests/interop/idl/echo.thrift)
// served by Go through package weft, for the binding's tests and the mesh
// test's Go hop. It behaves as weft-interop's Rust EchoHandler does.
package echoserver

import (
	"context"
	"sync"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
	"github.com/weft-rpc/weft/ffi/go/internal/gen/echo"
	"github.com/weft-rpc/weft/ffi/go/weftthrift"
)

// Seen is what the handler saw of one call.
type Seen struct {
	Method      string
	Deadline    time.Time
	HasDeadline bool
	Persistent  map[string]string
}

// Handler answers Echo calls; OnCall, when set, is told of each call
// before it is answered and may refuse it by returning an error message.
type Handler struct {
	OnCall func(ctx context.Context, call *weft.Call, key string) string

	mu   sync.Mutex
	seen []Seen
}

// Seen returns what the handler saw, oldest first.
func (h *Handler) Seen() []Seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Seen(nil), h.seen...)
}

// ServeWeft implements weft.Handler.
func (h *Handler) ServeWeft(ctx context.Context, call *weft.Call) {
	dl, ok := ctx.Deadline()
	s := Seen{Method: call.Method, Deadline: dl, HasDeadline: ok, Persistent: map[string]string{}}
	for _, k := range []string{"trace", "mesh-trace", "mesh-deadline-unix-ms"} {
		if v, ok := weft.Persistent(ctx, k); ok {
			s.Persistent[k] = v
		}
	}
	h.mu.Lock()
	h.seen = append(h.seen, s)
	h.mu.Unlock()
	bad := func(err error) { _ = call.Fail(weft.InvalidArgument, err.Error()) }
	switch call.Method {
	case "echo":
		var a echo.EchoEchoArgs
		if err := weftthrift.Args(call, &a); err != nil {
			bad(err)
			return
		}
		_ = weftthrift.Reply(call, &echo.EchoEchoResult{Success: a.Payload})
	case "fail":
		var a echo.EchoFailArgs
		if err := weftthrift.Args(call, &a); err != nil {
			bad(err)
			return
		}
		if a.Code < 0 {
			_ = call.Fail(weft.Internal, a.Message)
			return
		}
		_ = weftthrift.Exception(call, 1, &echo.EchoError{Code: a.Code, Message: a.Message})
	case "add":
		var a echo.EchoAddArgs
		if err := weftthrift.Args(call, &a); err != nil {
			bad(err)
			return
		}
		sum := a.A + a.B
		_ = weftthrift.Reply(call, &echo.EchoAddResult{Success: &sum})
	case "metainfo":
		var a echo.EchoMetainfoArgs
		if err := weftthrift.Args(call, &a); err != nil {
			bad(err)
			return
		}
		if h.OnCall != nil {
			if msg := h.OnCall(ctx, call, a.Key); msg != "" {
				_ = call.Fail(weft.FailedPrecondition, msg)
				return
			}
		}
		v, ok := weft.Persistent(ctx, a.Key)
		if !ok {
			v, _ = call.Transient(a.Key)
		}
		_ = call.SetBackward("echo-"+a.Key, v)
		_ = weftthrift.Reply(call, &echo.EchoMetainfoResult{Success: &v})
	case "ping", "notify":
		_ = call.Reply([]byte{0}) // an empty result struct: a field stop
	case "slow":
		var a echo.EchoSlowArgs
		if err := weftthrift.Args(call, &a); err != nil {
			bad(err)
			return
		}
		// Answered later, from another goroutine.
		time.AfterFunc(time.Duration(a.Millis)*time.Millisecond, func() {
			_ = weftthrift.Reply(call, &echo.EchoSlowResult{Success: a.Payload})
		})
	default:
		_ = call.Fail(weft.Unimplemented, "unknown method "+call.Method)
	}
}
