package weft

// #include <stdlib.h>
// #include "weft.h"
// weft_code weft_go_call(const weft_client *client, const char *method,
//                        const uint8_t *args, size_t args_len,
//                        const weft_ctx *ctx, uint64_t tag, weft_error **err);
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"time"
)

// Transport is a Thrift transport (framing) a client speaks.
type Transport int32

// The transports.
const (
	// TTHeader is Kitex/Volo TTHeader (the default; multiplexed, carries
	// metainfo and deadlines).
	TTHeader Transport = C.WEFT_TRANSPORT_TTHEADER
	// Framed is Apache's TFramedTransport.
	Framed Transport = C.WEFT_TRANSPORT_FRAMED
	// Buffered is unframed Thrift.
	Buffered Transport = C.WEFT_TRANSPORT_BUFFERED
	// THeader is Apache's THeader.
	THeader Transport = C.WEFT_TRANSPORT_THEADER
	// GRPC is gRPC over HTTP/2 (unary calls), with Protobuf: a call's
	// method is the path "/package.Service/Method", its args the encoded
	// request message and Reply.Result the encoded response message; a
	// status other than OK is the call's *Error.
	GRPC Transport = C.WEFT_TRANSPORT_GRPC
)

// Protocol is a Thrift protocol: how args and results are encoded.
type Protocol int32

// The protocols.
const (
	// Binary is TBinaryProtocol (the default).
	Binary Protocol = C.WEFT_PROTOCOL_BINARY
	// Compact is TCompactProtocol.
	Compact Protocol = C.WEFT_PROTOCOL_COMPACT
	// Protobuf goes with GRPC, and only with it.
	Protobuf Protocol = C.WEFT_PROTOCOL_PROTOBUF
)

// ConnectionMode says how calls share connections.
type ConnectionMode int32

// The connection modes.
const (
	// DefaultConnections is the transport's default: Multiplexed on
	// TTHeader and THeader, Pooled on framed and buffered.
	DefaultConnections ConnectionMode = 0
	// Multiplexed puts many calls in flight on each connection.
	Multiplexed ConnectionMode = C.WEFT_CONN_MULTIPLEXED + 1
	// Pooled makes one call at a time per connection, idle ones pooled.
	Pooled ConnectionMode = C.WEFT_CONN_POOLED + 1
)

// LoadBalance is a load-balancing strategy over a client's addresses.
type LoadBalance int32

// The strategies.
const (
	// P2C is power of two choices on peak-EWMA latency (the default).
	P2C LoadBalance = C.WEFT_LB_P2C
	// RoundRobin takes the addresses in turn.
	RoundRobin LoadBalance = C.WEFT_LB_ROUND_ROBIN
	// WeightedRandom picks at random, by weight.
	WeightedRandom LoadBalance = C.WEFT_LB_WEIGHTED_RANDOM
	// ConsistentHash hashes the metainfo value named by
	// ClientOptions.HashKey.
	ConsistentHash LoadBalance = C.WEFT_LB_CONSISTENT_HASH
)

// NoTimeout as ClientOptions.Timeout turns the client's default timeout
// off: calls then end only by their context's deadline.
const NoTimeout time.Duration = -1

// ClientOptions configures NewClient. The zero value of each field is
// Weft's default.
type ClientOptions struct {
	// Addresses of the servers, "host:port" (an IP literal) or
	// "unix:/path"; calls are balanced over them. At least one, unless
	// EtcdEndpoints is set.
	Addresses []string
	// EtcdEndpoints ("http://host:port" URLs) and EtcdService: find the
	// servers in etcd, where they registered under EtcdService (a Weft
	// server, or one made with ServerOptions.EtcdEndpoints), instead of
	// at Addresses, following them as they come and go. NewClient waits
	// up to 5 s for the first read (Unavailable when etcd does not
	// answer by then).
	EtcdEndpoints []string
	EtcdService   string
	// Service names the service called (TTHeader's to-service). Default
	// empty.
	Service string
	// Transport and Protocol: default TTHeader and Binary.
	Transport Transport
	Protocol  Protocol
	// ConnectionMode: default the transport's.
	ConnectionMode ConnectionMode
	// Timeout of each call, retries included, when its context has no
	// deadline: default 30 s; NoTimeout for none.
	Timeout time.Duration
	// AttemptTimeout of each attempt (a timed-out attempt may be retried
	// elsewhere): default none.
	AttemptTimeout time.Duration
	// MaxAttempts per call, 1 turning retries off: default 3.
	MaxAttempts int
	// RetryBudget is the most retries per call on average (0.1 = 10 %):
	// used when MaxAttempts is set; 0 then means the default, 0.1.
	RetryBudget float64
	// Idempotent names methods whose calls may be retried even when they
	// may have reached the server; AllIdempotent marks every method.
	Idempotent    []string
	AllIdempotent bool
	// LoadBalance strategy: default P2C.
	LoadBalance LoadBalance
	// HashKey is the metainfo key ConsistentHash hashes.
	HashKey string
	// DisableBreakers turns the per-method and per-instance circuit
	// breakers off (they are on by default).
	DisableBreakers bool
}

// Client calls one service through Weft: connections, balancing, retries,
// breakers and deadlines. Safe for concurrent use by any number of
// goroutines.
type Client struct {
	p        *C.weft_client
	protocol Protocol
	once     sync.Once
	cleanup  runtime.Cleanup
}

// NewClient makes a client on rt. Connections are made by the first calls,
// so an unreachable server shows in calls, not here; a malformed address
// or no address is an InvalidArgument error.
func NewClient(rt *Runtime, o ClientOptions) (*Client, error) {
	if rt == nil {
		return nil, &Error{Code: InvalidArgument, Message: "runtime is nil"}
	}
	var opts *C.weft_client_options
	var e *C.weft_error
	if err := check(C.weft_client_options_new(&opts, &e), e); err != nil {
		return nil, err
	}
	defer C.weft_client_options_free(opts)
	str := func(f func(*C.char, **C.weft_error) C.weft_code, s string) error {
		cs := cString(s)
		defer free(cs)
		var e *C.weft_error
		return check(f(cs, &e), e)
	}
	steps := []func() error{}
	for _, a := range o.Addresses {
		steps = append(steps, func() error {
			return str(func(s *C.char, e **C.weft_error) C.weft_code {
				return C.weft_client_options_add_address(opts, s, e)
			}, a)
		})
	}
	if len(o.EtcdEndpoints) > 0 {
		steps = append(steps, func() error {
			ce := cString(strings.Join(o.EtcdEndpoints, ","))
			defer free(ce)
			cs := cString(o.EtcdService)
			defer free(cs)
			return check(C.weft_client_options_set_etcd(opts, ce, cs, &e), e)
		})
	}
	steps = append(steps,
		func() error {
			return str(func(s *C.char, e **C.weft_error) C.weft_code {
				return C.weft_client_options_set_service(opts, s, e)
			}, o.Service)
		},
		func() error {
			return check(C.weft_client_options_set_codec(opts, C.int32_t(o.Transport), C.int32_t(o.Protocol), &e), e)
		},
		func() error {
			if o.ConnectionMode == DefaultConnections {
				return nil
			}
			return check(C.weft_client_options_set_connection_mode(opts, C.int32_t(o.ConnectionMode-1), &e), e)
		},
		func() error {
			switch {
			case o.Timeout == 0:
				return nil
			case o.Timeout == NoTimeout:
				return check(C.weft_client_options_set_timeout_ms(opts, 0, &e), e)
			}
			return check(C.weft_client_options_set_timeout_ms(opts, C.int64_t(ceilMillis(o.Timeout)), &e), e)
		},
		func() error {
			if o.AttemptTimeout == 0 {
				return nil
			}
			return check(C.weft_client_options_set_attempt_timeout_ms(opts, C.int64_t(ceilMillis(o.AttemptTimeout)), &e), e)
		},
		func() error {
			if o.MaxAttempts == 0 {
				return nil
			}
			if o.MaxAttempts < 0 {
				return &Error{Code: InvalidArgument, Message: "MaxAttempts is negative"}
			}
			budget := o.RetryBudget
			if budget == 0 {
				budget = 0.1
			}
			return check(C.weft_client_options_set_retries(opts, C.uint32_t(o.MaxAttempts), C.double(budget), &e), e)
		},
		func() error {
			if !o.AllIdempotent {
				return nil
			}
			return check(C.weft_client_options_set_idempotent(opts, nil, &e), e)
		},
	)
	for _, m := range o.Idempotent {
		steps = append(steps, func() error {
			return str(func(s *C.char, e **C.weft_error) C.weft_code {
				return C.weft_client_options_set_idempotent(opts, s, e)
			}, m)
		})
	}
	steps = append(steps,
		func() error {
			return check(C.weft_client_options_set_load_balance(opts, C.int32_t(o.LoadBalance), &e), e)
		},
		func() error {
			if o.HashKey == "" {
				return nil
			}
			return str(func(s *C.char, e **C.weft_error) C.weft_code {
				return C.weft_client_options_set_hash_key(opts, s, e)
			}, o.HashKey)
		},
		func() error {
			if !o.DisableBreakers {
				return nil
			}
			return check(C.weft_client_options_set_breakers(opts, false, &e), e)
		},
	)
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	c := &Client{protocol: o.Protocol}
	if err := check(C.weft_client_new(rt.p, opts, &c.p, &e), e); err != nil {
		return nil, err
	}
	// A client nothing refers to any more is freed (calls in flight still
	// end: Weft keeps what they need).
	runtime.KeepAlive(rt)
	c.cleanup = runtime.AddCleanup(c, func(p *C.weft_client) { C.weft_client_free(p) }, c.p)
	return c, nil
}

// Protocol returns the protocol the client's args and results are
// encoded in.
func (c *Client) Protocol() Protocol { return c.protocol }

// Close frees the client. Calls in flight still end (with their answer or
// error); calls made after Close get a FailedPrecondition error from
// Weft, which refuses the freed handle. Closing twice is harmless. A
// client that is not closed is freed once the garbage collector finds it
// unreachable.
func (c *Client) Close() {
	c.once.Do(func() {
		c.cleanup.Stop()
		C.weft_client_free(c.p)
	})
}

// Reply is the answer to a call.
type Reply struct {
	// Result is the encoded result struct (`method_result` in Thrift's
	// generated code), in the client's protocol.
	Result []byte
	// ExceptionID is 0, or the result field id of the declared exception
	// Result holds.
	ExceptionID int16
	// Exception is that exception struct alone (a sub-slice of Result),
	// or nil.
	Exception []byte
	// Backward is the metainfo the server sent back, or nil.
	Backward map[string]string
}

// callResult is what a completion callback hands the waiting call.
type callResult struct {
	reply *Reply
	err   error
}

// Call calls method with args, the encoded args struct (`method_args`) in
// the client's protocol, and returns the answer.
//
// ctx's deadline becomes the call's Weft deadline (sent to the server as
// the time left), and its metainfo (WithPersistent, WithTransient, or a
// server handler's incoming values) and caller name (WithCaller) go with
// the call. Cancelling ctx, or
// its deadline passing, makes Call return at once with an *Error
// (Cancelled or DeadlineExceeded) that unwraps to ctx.Err(), and ends the
// call in Weft (weft_ctx_cancel: its connection slot and buffers are
// released, a late answer is dropped; the server is not told). Call waits
// without holding an OS thread.
//
// The error is an *Error for a failed call, or an *Exception, together
// with a non-nil Reply, when the server answered with a declared
// exception.
func (c *Client) Call(ctx context.Context, method string, args []byte) (*Reply, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxError(err)
	}
	// A context that can end (ctx.Done() != nil) always gets a weft_ctx,
	// for weft_ctx_cancel.
	cctx, err := callContext(ctx, ctx.Done() != nil)
	if err != nil {
		return nil, err
	}
	m, owned := methodName(method)
	p := &pending{done: make(chan callResult, 1), ctx: cctx}
	h := cgo.NewHandle(p)
	var e *C.weft_error
	code := C.weft_go_call(c.p, m, bytesPtr(args), C.size_t(len(args)), cctx, C.uint64_t(h), &e)
	// c (whose cleanup would free c.p) and args stay alive through the C call.
	runtime.KeepAlive(c)
	runtime.KeepAlive(args)
	if owned {
		free(m)
	}
	if err := check(code, e); err != nil {
		h.Delete()
		C.weft_ctx_free(cctx)
		return nil, err
	}
	// From here the completion callback owns cctx and frees it.
	select {
	case r := <-p.done:
		return r.reply, r.err
	case <-ctx.Done():
		// The answer may have arrived at the same moment: prefer it.
		select {
		case r := <-p.done:
			return r.reply, r.err
		default:
		}
		// Weft ends the call at once (its completion, CANCELLED, lands in
		// the buffered channel and is released there). Under p.mu, so
		// that the callback cannot free cctx meanwhile.
		p.mu.Lock()
		if !p.completed {
			C.weft_ctx_cancel(cctx, nil)
		}
		p.mu.Unlock()
		return nil, ctxError(ctx.Err())
	}
}

// pending is a call in flight, named by the cgo.Handle in its tag.
type pending struct {
	done chan callResult
	ctx  *C.weft_ctx // freed by the completion callback; may be nil

	mu        sync.Mutex
	completed bool // set by the callback before it frees ctx
}

// callContext returns a weft_ctx carrying ctx's deadline and metainfo, or
// nil when ctx has neither and always is false. The caller frees it.
func callContext(ctx context.Context, always bool) (*C.weft_ctx, error) {
	deadline, hasDeadline := ctx.Deadline()
	persistent, transient := collect(ctx)
	caller := callerOf(ctx)
	if !always && !hasDeadline && persistent == nil && transient == nil && caller == "" {
		return nil, nil
	}
	var cctx *C.weft_ctx
	var e *C.weft_error
	if err := check(C.weft_ctx_new(&cctx, &e), e); err != nil {
		return nil, err
	}
	fail := func(err error) (*C.weft_ctx, error) {
		C.weft_ctx_free(cctx)
		return nil, err
	}
	if hasDeadline {
		// Whole milliseconds, rounded down so that Weft's deadline is not
		// later than ctx's; at least 1 (0 would mean "no timeout").
		left := time.Until(deadline).Milliseconds()
		if left <= 0 {
			return fail(ctxError(context.DeadlineExceeded))
		}
		if err := check(C.weft_ctx_set_timeout_ms(cctx, C.int64_t(left), &e), e); err != nil {
			return fail(err)
		}
	}
	if caller != "" {
		cs := cString(caller)
		code := C.weft_ctx_set_caller(cctx, cs, &e)
		free(cs)
		if err := check(code, e); err != nil {
			return fail(err)
		}
	}
	if err := setScope(cctx, C.WEFT_SCOPE_PERSISTENT, persistent); err != nil {
		return fail(err)
	}
	if err := setScope(cctx, C.WEFT_SCOPE_TRANSIENT, transient); err != nil {
		return fail(err)
	}
	return cctx, nil
}

func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
