package weft

// #include "weft.h"
// weft_code weft_go_serve(weft_runtime *rt, const weft_server_options *opts,
//                         const char *address, uintptr_t handler,
//                         weft_server **out, weft_error **err);
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Handler serves the calls of a Server. ServeWeft is called on a goroutine
// of its own for each call; it (or any goroutine it hands the call to,
// at any later time) must answer once through Call.Reply, Call.Exception
// or Call.Fail. ctx carries the caller's deadline and persistent metainfo,
// so calls made with it pass both on; it is cancelled once the call is
// answered.
type Handler interface {
	ServeWeft(ctx context.Context, call *Call)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, call *Call)

// ServeWeft calls f(ctx, call).
func (f HandlerFunc) ServeWeft(ctx context.Context, call *Call) { f(ctx, call) }

// Call is one call a Server received. Its answer methods are safe to use
// from any goroutine; the first answer wins and later ones get a
// FailedPrecondition error.
type Call struct {
	// Method is the method called; for a gRPC call its path,
	// "/package.Service/Method".
	Method string
	// Service is the IDL service the caller named, possibly empty; for a
	// gRPC call the service in the path.
	Service string
	// Args is the encoded args struct (`method_args`) in Protocol; for a
	// gRPC call the encoded request message.
	Args []byte
	// Protocol is the protocol of Args, which the answer must use too:
	// Protobuf for a gRPC call.
	Protocol Protocol
	// Oneway is true for a one-way call: its answer is dropped, but it
	// must still be given to end the call.
	Oneway bool

	ctx       *C.weft_ctx
	resp      *C.weft_responder
	transient map[string]string
	cancel    context.CancelFunc
	answered  atomic.Bool
}

// Transient returns the transient metainfo value of key the caller sent
// (for this hop only, so not passed on by calls made with the handler's
// context).
func (c *Call) Transient(key string) (string, bool) {
	v, ok := c.transient[key]
	return v, ok
}

// SetBackward sets metainfo key=value to go back to the caller with the
// answer; call it before answering.
func (c *Call) SetBackward(key, value string) error {
	if c.answered.Load() {
		return &Error{Code: FailedPrecondition, Message: "the call is answered already"}
	}
	return setScope(c.ctx, C.WEFT_SCOPE_BACKWARD, map[string]string{key: value})
}

func (c *Call) answer(f func(e **C.weft_error) C.weft_code) error {
	if !c.answered.CompareAndSwap(false, true) {
		return &Error{Code: FailedPrecondition, Message: "the call is answered already"}
	}
	defer c.cancel()
	var e *C.weft_error
	return check(f(&e), e)
}

// Reply answers with result, the encoded result struct (`method_result`,
// with its success field or a declared exception set) in c.Protocol; for a
// gRPC call, the encoded reply message. Bytes that are not one struct (for
// gRPC: not protobuf's wire format) get an InvalidArgument error here, and
// the caller an Internal one.
func (c *Call) Reply(result []byte) error {
	return c.answer(func(e **C.weft_error) C.weft_code {
		return C.weft_responder_reply(c.resp, bytesPtr(result), C.size_t(len(result)), e)
	})
}

// Exception answers with a declared exception: exception is the exception
// struct alone, encoded in c.Protocol, and fieldID (> 0) its field in the
// method's result struct. gRPC has no declared exceptions: for a gRPC call
// it is refused with InvalidArgument (use Fail).
func (c *Call) Exception(fieldID int16, exception []byte) error {
	return c.answer(func(e **C.weft_error) C.weft_code {
		return C.weft_responder_exception(c.resp, C.int16_t(fieldID), bytesPtr(exception), C.size_t(len(exception)), e)
	})
}

// Fail answers with an error: code (not OK) and message, which the caller
// receives as a TApplicationException (a Weft caller as the same code); a
// gRPC caller as grpc-status and grpc-message.
func (c *Call) Fail(code Code, message string) error {
	return c.answer(func(e **C.weft_error) C.weft_code {
		m := cString(message)
		defer free(m)
		return C.weft_responder_error(c.resp, C.weft_code(code), m, e)
	})
}

// dispatcher is what the C dispatcher's user data names.
type dispatcher struct{ handler Handler }

func (d *dispatcher) serve(ctx context.Context, call *Call) {
	defer func() {
		if r := recover(); r != nil {
			_ = call.Fail(Internal, fmt.Sprintf("handler panicked: %v", r))
		}
	}()
	d.handler.ServeWeft(ctx, call)
}

// ServerOptions configures Serve. The zero value of each field is Weft's
// default.
type ServerOptions struct {
	// HandlerTimeout is how long a call without a deadline waits for its
	// answer before the caller gets DeadlineExceeded: default 30 s.
	HandlerTimeout time.Duration
	// DrainTimeout is how long Shutdown lets calls in flight finish:
	// default 30 s.
	DrainTimeout time.Duration
	// MaxConcurrency sheds calls beyond it in flight with
	// ResourceExhausted: default no limit.
	MaxConcurrency int
	// EtcdEndpoints ("http://host:port" URLs) and EtcdService: register
	// in etcd once listening, as Advertise (default the bound address)
	// with Weight (default 100), and deregister first thing in Shutdown,
	// DeregisterGrace before draining (default 1 s; NoGrace for none).
	// Serve fails with Unavailable when etcd refuses the registration.
	EtcdEndpoints   []string
	EtcdService     string
	Weight          uint32
	Advertise       string
	DeregisterGrace time.Duration
	// GRPC serves gRPC too, on the same port: each unary call reaches the
	// Handler with Protocol Protobuf, Method its path and Args the encoded
	// request message; it answers with Reply (the encoded reply message)
	// or Fail (the call's grpc-status). GRPCServices, when not empty,
	// limits the services that reach the Handler ("package.Service"; it
	// implies GRPC); calls to others get Unimplemented from Weft.
	// GRPCMaxMessage bounds a request message (default 4 MiB); larger ones
	// get ResourceExhausted.
	GRPC           bool
	GRPCServices   []string
	GRPCMaxMessage int
}

// NoGrace as ServerOptions.DeregisterGrace drains at once after
// deregistering.
const NoGrace time.Duration = -1

// Server is a running Weft server whose calls a Go Handler answers. Safe
// for concurrent use.
type Server struct {
	p    *C.weft_server
	h    cgo.Handle
	addr string
	once sync.Once
	err  error
}

// Serve serves Thrift on address ("host:port", port 0 for any free one, or
// "unix:/path") on rt, every transport and protocol on the one port, and
// calls handler for every call. opts may be nil.
func Serve(rt *Runtime, address string, handler Handler, opts *ServerOptions) (*Server, error) {
	if rt == nil || handler == nil {
		return nil, &Error{Code: InvalidArgument, Message: "runtime or handler is nil"}
	}
	var copts *C.weft_server_options
	var e *C.weft_error
	if err := check(C.weft_server_options_new(&copts, &e), e); err != nil {
		return nil, err
	}
	defer C.weft_server_options_free(copts)
	if opts != nil {
		if opts.HandlerTimeout > 0 {
			if err := check(C.weft_server_options_set_handler_timeout_ms(copts, C.int64_t(ceilMillis(opts.HandlerTimeout)), &e), e); err != nil {
				return nil, err
			}
		}
		if opts.DrainTimeout > 0 {
			if err := check(C.weft_server_options_set_drain_timeout_ms(copts, C.int64_t(ceilMillis(opts.DrainTimeout)), &e), e); err != nil {
				return nil, err
			}
		}
		if opts.MaxConcurrency > 0 {
			if err := check(C.weft_server_options_set_max_concurrency(copts, C.size_t(opts.MaxConcurrency), &e), e); err != nil {
				return nil, err
			}
		}
		if err := etcdOptions(copts, opts); err != nil {
			return nil, err
		}
		if err := grpcOptions(copts, opts); err != nil {
			return nil, err
		}
	}
	s := &Server{h: cgo.NewHandle(&dispatcher{handler})}
	ca := cString(address)
	defer free(ca)
	code := C.weft_go_serve(rt.p, copts, ca, C.uintptr_t(s.h), &s.p, &e)
	runtime.KeepAlive(rt)
	if err := check(code, e); err != nil {
		s.h.Delete()
		return nil, err
	}
	var b C.weft_bytes
	if err := check(C.weft_server_local_addr(s.p, &b, &e), e); err != nil {
		C.weft_server_free(s.p)
		s.h.Delete()
		return nil, err
	}
	s.addr = goString(b.data, b.len)
	C.weft_bytes_free(&b)
	return s, nil
}

// Addr returns the address the server listens on ("127.0.0.1:40123",
// "unix:/path").
func (s *Server) Addr() string { return s.addr }

// Shutdown stops the server gracefully and waits: it stops accepting,
// lets calls in flight be answered (up to the drain timeout), refuses new
// ones as not processed, closes, and frees the server. Shutting down or
// closing again returns the first result.
func (s *Server) Shutdown() error {
	s.once.Do(func() {
		var e *C.weft_error
		s.err = check(C.weft_server_shutdown(s.p, &e), e)
		C.weft_server_free(s.p)
		s.h.Delete()
	})
	return s.err
}

// Close stops the server at once (calls in flight are dropped) and frees
// it. Closing or shutting down again is harmless.
func (s *Server) Close() {
	s.once.Do(func() {
		C.weft_server_free(s.p)
		s.h.Delete()
	})
}

func grpcOptions(copts *C.weft_server_options, opts *ServerOptions) error {
	var e *C.weft_error
	if opts.GRPC {
		if err := check(C.weft_server_options_set_grpc(copts, C.bool(true), &e), e); err != nil {
			return err
		}
	}
	for _, name := range opts.GRPCServices {
		cn := cString(name)
		err := check(C.weft_server_options_add_grpc_service(copts, cn, &e), e)
		free(cn)
		if err != nil {
			return err
		}
	}
	if opts.GRPCMaxMessage < 0 {
		return &Error{Code: InvalidArgument, Message: "GRPCMaxMessage is negative"}
	}
	if opts.GRPCMaxMessage > 0 {
		return check(C.weft_server_options_set_grpc_max_message(copts, C.size_t(opts.GRPCMaxMessage), &e), e)
	}
	return nil
}

func etcdOptions(copts *C.weft_server_options, opts *ServerOptions) error {
	if len(opts.EtcdEndpoints) == 0 {
		return nil
	}
	var e *C.weft_error
	ce := cString(strings.Join(opts.EtcdEndpoints, ","))
	defer free(ce)
	cs := cString(opts.EtcdService)
	defer free(cs)
	if err := check(C.weft_server_options_set_etcd(copts, ce, cs, C.uint32_t(opts.Weight), &e), e); err != nil {
		return err
	}
	if opts.Advertise != "" {
		ca := cString(opts.Advertise)
		defer free(ca)
		if err := check(C.weft_server_options_set_advertise(copts, ca, &e), e); err != nil {
			return err
		}
	}
	grace := opts.DeregisterGrace
	switch {
	case grace == NoGrace:
		grace = 0
	case grace == 0:
		return nil
	case grace < 0:
		return &Error{Code: InvalidArgument, Message: "DeregisterGrace is negative"}
	}
	return check(C.weft_server_options_set_deregister_grace_ms(copts, C.int64_t(ceilMillis(grace)), &e), e)
}
