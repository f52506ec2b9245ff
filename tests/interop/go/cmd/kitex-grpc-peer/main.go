// Command kitex-grpc-peer is Kitex's gRPC (nphttp2, protobuf) side of Weft's
// interop tests (tests/interop/tests/kitex_grpc.rs), for the Echo service of
// tests/interop/idl/echo.proto, code from Kitex's own generator:
//
//	kitex-grpc-peer server                    prints "listening on ADDR"
//	kitex-grpc-peer client -addr ADDR -case CASE [-server weft|kitex]
//
// The client runs one case against a Weft server, printing "ok CASE" or a
// "FAIL ..." line per failed check. Both servers (this one and the Weft one
// in the test) answer alike: Unary echoes the message and reports what the
// call carried (metadata "x-*" as md:KEY, metainfo as persist:KEY and
// transient:KEY, the caller's service name as caller) and its deadline; a nonzero code is answered with that
// status, message "echo status: MESSAGE"; sleep_ms sleeps first.
// ServerStream sends count replies "MESSAGE#i"; ClientStream answers the
// messages joined by ","; Bidi echoes each message as it comes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/bytedance/gopkg/cloud/metainfo"
	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/client/callopt"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2/codes"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2/metadata"
	"github.com/cloudwego/kitex/pkg/remote/trans/nphttp2/status"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
	"github.com/cloudwego/kitex/pkg/transmeta"
	"github.com/cloudwego/kitex/server"
	"github.com/cloudwego/kitex/transport"

	"weftinterop/kitex_gen/echo"
	echosvc "weftinterop/kitex_gen/echo/echo"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kitex-grpc-peer server|client [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		serve()
	case "client":
		runClient(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: kitex-grpc-peer server|client [flags]")
		os.Exit(2)
	}
}

// ===== server =====

type handler struct{}

// seen reports what the call carried: x-* metadata and Kitex metainfo.
func seen(ctx context.Context) map[string]string {
	out := map[string]string{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for k, v := range md {
			if strings.HasPrefix(k, "x-") && len(v) > 0 {
				out["md:"+k] = strings.Join(v, ",")
			}
		}
	}
	for k, v := range metainfo.GetAllPersistentValues(ctx) {
		out["persist:"+k] = v
	}
	for k, v := range metainfo.GetAllValues(ctx) {
		out["transient:"+k] = v
	}
	if ri := rpcinfo.GetRPCInfo(ctx); ri != nil && ri.From() != nil && ri.From().ServiceName() != "" {
		out["caller"] = ri.From().ServiceName()
	}
	return out
}

func timeoutMs(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d).Milliseconds()
	}
	return 0
}

func statusOf(req *echo.EchoRequest) error {
	if req.Code != 0 {
		return status.Errorf(codes.Code(req.Code), "echo status: %s", req.Message)
	}
	return nil
}

func (handler) Unary(ctx context.Context, req *echo.EchoRequest) (*echo.EchoReply, error) {
	if req.SleepMs > 0 {
		select {
		case <-time.After(time.Duration(req.SleepMs) * time.Millisecond):
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "kitex handler cancelled: %v", ctx.Err())
		}
	}
	if err := statusOf(req); err != nil {
		return nil, err
	}
	_ = nphttp2.SetHeader(ctx, metadata.Pairs("x-echo-header", req.Message))
	_ = nphttp2.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", "done"))
	return &echo.EchoReply{Message: req.Message, Seen: seen(ctx), TimeoutMs: timeoutMs(ctx)}, nil
}

func (handler) ServerStream(req *echo.EchoRequest, stream echo.Echo_ServerStreamServer) error {
	for i := int32(0); i < req.Count; i++ {
		if err := stream.Send(&echo.EchoReply{Message: fmt.Sprintf("%s#%d", req.Message, i), Index: i}); err != nil {
			return err
		}
	}
	return statusOf(req)
}

func (handler) ClientStream(stream echo.Echo_ClientStreamServer) error {
	var msgs []string
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := statusOf(req); err != nil {
			return err
		}
		msgs = append(msgs, req.Message)
	}
	return stream.SendAndClose(&echo.EchoReply{Message: strings.Join(msgs, ","), Index: int32(len(msgs))})
}

func (handler) Bidi(stream echo.Echo_BidiServer) error {
	for i := int32(0); ; i++ {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := statusOf(req); err != nil {
			return err
		}
		if err := stream.Send(&echo.EchoReply{Message: req.Message, Index: i}); err != nil {
			return err
		}
	}
}

func serve() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Kitex's default server detects the HTTP/2 preface and serves gRPC on
	// the same port as TTHeader; the metainfo handler reads rpc-persist-*
	// and rpc-transit-* metadata into metainfo.
	svr := echosvc.NewServer(&handler{},
		server.WithListener(ln),
		server.WithMetaHandler(transmeta.ServerHTTP2Handler),
	)
	go func() {
		time.Sleep(50 * time.Millisecond)
		fmt.Printf("listening on %s\n", ln.Addr())
	}()
	if err := svr.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// ===== client =====

var failed bool

// serverKind is whose server answers, "kitex" or "weft".
var serverKind string

// callerName is the service name this client calls as: Kitex sends it as
// source-service metadata.
const callerName = "kitex-grpc-peer"

func fail(format string, args ...any) {
	failed = true
	fmt.Printf("FAIL "+format+"\n", args...)
}

func runClient(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "server host:port")
	c := fs.String("case", "", "unary|deadline|status|server-stream|client-stream|bidi|stream-status")
	srv := fs.String("server", "kitex", "whose server answers: kitex|weft (how it names metainfo keys)")
	_ = fs.Parse(args)
	serverKind = *srv
	cli, err := echosvc.NewClient("weft.interop.echo.Echo",
		client.WithHostPorts(*addr),
		client.WithClientBasicInfo(&rpcinfo.EndpointBasicInfo{ServiceName: callerName}),
		client.WithTransportProtocol(transport.GRPC),
		client.WithMetaHandler(transmeta.ClientHTTP2Handler),
	)
	if err != nil {
		fmt.Println("FAIL new client:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	switch *c {
	case "unary":
		caseUnary(ctx, cli)
	case "deadline":
		caseDeadline(cli)
	case "status":
		caseStatus(ctx, cli)
	case "server-stream":
		caseServerStream(ctx, cli)
	case "client-stream":
		caseClientStream(ctx, cli)
	case "bidi":
		caseBidi(ctx, cli)
	case "stream-status":
		caseStreamStatus(ctx, cli)
	default:
		fmt.Println("FAIL unknown case", *c)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
	fmt.Println("ok", *c)
}

func expect(what, got, want string) {
	if got != want {
		fail("%s: got %q, want %q", what, got, want)
	}
}

func dump(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, m[k])
	}
	return b.String()
}

func caseUnary(ctx context.Context, cli echosvc.Client) {
	ctx = metadata.AppendToOutgoingContext(ctx, "x-plain", "from-kitex")
	ctx = metainfo.WithPersistentValue(ctx, "TENANT", "blue")
	ctx = metainfo.WithValue(ctx, "HOP", "one")
	var header, trailer metadata.MD
	ctx = nphttp2.GRPCHeader(ctx, &header)
	ctx = nphttp2.GRPCTrailer(ctx, &trailer)
	r, err := cli.Unary(ctx, &echo.EchoRequest{Message: "héllo, weft"})
	if err != nil {
		fail("unary: %v", err)
		return
	}
	expect("message", r.Message, "héllo, weft")
	expect("md:x-plain", r.Seen["md:x-plain"], "from-kitex")
	// Kitex's metainfo travels as rpc-persist-tenant / rpc-transit-hop.
	// Kitex reads the names back in CGI form (TENANT, HOP); Weft keeps
	// the header's lower-case name (tenant, hop).
	persist, transient := "persist:TENANT", "transient:HOP"
	if serverKind == "weft" {
		persist, transient = "persist:tenant", "transient:hop"
	}
	expect(persist, r.Seen[persist], "blue")
	expect(transient, r.Seen[transient], "one")
	expect("caller", r.Seen["caller"], callerName)
	if failed {
		fmt.Printf("FAIL (the server saw: %s)\n", dump(r.Seen))
	}
	expect("response header x-echo-header", strings.Join(header.Get("x-echo-header"), ","), "héllo, weft")
	expect("response trailer x-echo-trailer", strings.Join(trailer.Get("x-echo-trailer"), ","), "done")
	// The 20 s context deadline travels as grpc-timeout.
	if r.TimeoutMs <= 0 || r.TimeoutMs > 20000 {
		fail("the server saw a deadline of %d ms, want 0 < d <= 20000", r.TimeoutMs)
	}
}

func caseDeadline(cli echosvc.Client) {
	// 300 ms of RPC timeout, a handler sleeping 5 s: DEADLINE_EXCEEDED, in
	// well under the sleep.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cli.Unary(ctx, &echo.EchoRequest{Message: "slow", SleepMs: 5000}, callopt.WithRPCTimeout(300*time.Millisecond))
	took := time.Since(start)
	if err == nil {
		fail("a 5 s call under a 300 ms deadline succeeded")
		return
	}
	if took > 3*time.Second {
		fail("the deadline failed only after %v: %v", took, err)
	}
	// Kitex's client ends the call itself at its RPC timeout (a kerrors
	// timeout), or reports the server's DEADLINE_EXCEEDED; either carries
	// the deadline.
	if s, ok := status.FromError(err); ok && s.Code() == codes.DeadlineExceeded {
		return
	}
	if !strings.Contains(strings.ToLower(err.Error()), "timeout") && !strings.Contains(strings.ToLower(err.Error()), "deadline") {
		fail("deadline: not a timeout: %v", err)
	}
	// The server, asked right after, has seen the deadline: a 2 s deadline
	// arrives as 0 < d <= 2000 ms.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	r, err := cli.Unary(ctx2, &echo.EchoRequest{Message: "quick"})
	if err != nil {
		fail("deadline: the follow-up call: %v", err)
		return
	}
	if r.TimeoutMs <= 0 || r.TimeoutMs > 2000 {
		fail("deadline: the server saw %d ms, want 0 < d <= 2000", r.TimeoutMs)
	}
}

// bizSuffix is what Kitex v0.16.3's gRPC server appends to the message of
// a status its handler returns: it is on the wire (grpcio, calling this
// server, reads grpc-message "echo status: nope [biz error]"), so a Kitex
// client sees it from a Kitex server and not from a Weft one.
const bizSuffix = " [biz error]"

func checkStatus(what string, err error, code codes.Code, msg string) {
	if s, ok := status.FromError(err); ok && err != nil && s.Code() == code && s.Message() == msg+bizSuffix {
		return
	}
	if err == nil {
		fail("%s: no error, want status %d", what, code)
		return
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		if s, ok := status.FromError(err); ok {
			if s.Code() != code || s.Message() != msg {
				fail("%s: status %d %q, want %d %q", what, s.Code(), s.Message(), code, msg)
			}
			return
		}
		fail("%s: not a gRPC status: %v", what, err)
		return
	}
	s := se.GRPCStatus()
	if s.Code() != code || s.Message() != msg {
		fail("%s: status %d %q, want %d %q", what, s.Code(), s.Message(), code, msg)
	}
}

func caseStatus(ctx context.Context, cli echosvc.Client) {
	_, err := cli.Unary(ctx, &echo.EchoRequest{Message: "nope", Code: int32(codes.PermissionDenied)})
	checkStatus("unary PERMISSION_DENIED", err, codes.PermissionDenied, "echo status: nope")
	_, err = cli.Unary(ctx, &echo.EchoRequest{Message: "ünïcode % msg", Code: int32(codes.NotFound)})
	checkStatus("unary NOT_FOUND", err, codes.NotFound, "echo status: ünïcode % msg")
}

func caseServerStream(ctx context.Context, cli echosvc.Client) {
	st, err := cli.ServerStream(ctx, &echo.EchoRequest{Message: "s", Count: 5})
	if err != nil {
		fail("server stream: %v", err)
		return
	}
	var got []string
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("server stream recv: %v", err)
			return
		}
		got = append(got, fmt.Sprintf("%s/%d", r.Message, r.Index))
	}
	expect("server stream", strings.Join(got, " "), "s#0/0 s#1/1 s#2/2 s#3/3 s#4/4")
}

func caseClientStream(ctx context.Context, cli echosvc.Client) {
	st, err := cli.ClientStream(ctx)
	if err != nil {
		fail("client stream: %v", err)
		return
	}
	for _, m := range []string{"a", "b", "c", "d"} {
		if err := st.Send(&echo.EchoRequest{Message: m}); err != nil {
			fail("client stream send: %v", err)
			return
		}
	}
	r, err := st.CloseAndRecv()
	if err != nil {
		fail("client stream close: %v", err)
		return
	}
	expect("client stream", fmt.Sprintf("%s/%d", r.Message, r.Index), "a,b,c,d/4")
}

func caseBidi(ctx context.Context, cli echosvc.Client) {
	st, err := cli.Bidi(ctx)
	if err != nil {
		fail("bidi: %v", err)
		return
	}
	// Ping-pong: each reply read before the next send, so the server
	// answers as messages come, not at the end.
	for i, m := range []string{"one", "two", "three"} {
		if err := st.Send(&echo.EchoRequest{Message: m}); err != nil {
			fail("bidi send: %v", err)
			return
		}
		r, err := st.Recv()
		if err != nil {
			fail("bidi recv: %v", err)
			return
		}
		expect("bidi reply", fmt.Sprintf("%s/%d", r.Message, r.Index), fmt.Sprintf("%s/%d", m, i))
	}
	if err := st.Close(); err != nil {
		fail("bidi close send: %v", err)
	}
	if _, err := st.Recv(); err != io.EOF {
		fail("bidi end: %v, want EOF", err)
	}
}

func caseStreamStatus(ctx context.Context, cli echosvc.Client) {
	// Two replies, then the status in the trailers.
	st, err := cli.ServerStream(ctx, &echo.EchoRequest{Message: "e", Count: 2, Code: int32(codes.ResourceExhausted)})
	if err != nil {
		fail("stream status: %v", err)
		return
	}
	n := 0
	for {
		_, err := st.Recv()
		if err == nil {
			n++
			continue
		}
		checkStatus("server stream RESOURCE_EXHAUSTED", err, codes.ResourceExhausted, "echo status: e")
		break
	}
	if n != 2 {
		fail("stream status: %d replies before the status, want 2", n)
	}
}
