package weft_test

import (
	"context"
	"fmt"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
	"github.com/weft-rpc/weft/ffi/go/internal/gen/echo"
	"github.com/weft-rpc/weft/ffi/go/weftthrift"
)

// A Go server and a Go client of the Echo service, both through Weft.
func Example() {
	rt, err := weft.NewRuntime(1)
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	srv, err := weft.Serve(rt, "127.0.0.1:0", weft.HandlerFunc(func(ctx context.Context, call *weft.Call) {
		var args echo.EchoAddArgs
		if err := weftthrift.Args(call, &args); err != nil {
			_ = call.Fail(weft.InvalidArgument, err.Error())
			return
		}
		trace, _ := weft.Persistent(ctx, "trace")
		_ = call.SetBackward("seen", trace)
		sum := args.A + args.B
		_ = weftthrift.Reply(call, &echo.EchoAddResult{Success: &sum})
	}), nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	c, err := weft.NewClient(rt, weft.ClientOptions{Addresses: []string{srv.Addr()}, Service: "Echo"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ctx = weft.WithPersistent(ctx, "trace", "abc")
	var res echo.EchoAddResult
	if err := weftthrift.Call(ctx, c, "add", &echo.EchoAddArgs{A: 2, B: 3}, &res); err != nil {
		panic(err)
	}
	fmt.Println(res.GetSuccess())
	// Output: 5
}
