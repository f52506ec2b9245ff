// Package weft calls and serves Thrift services through Weft, by way of
// its C ABI (libweft, ffi/include/weft.h): a Go program keeps encoding its
// messages with its own Thrift library (Apache Thrift's Go code, or bytes
// by hand) and gets Weft's transports (TTHeader, THeader, framed,
// buffered; binary or compact), load balancing, retries, circuit breakers,
// deadlines and metainfo.
//
// A Runtime owns Weft's threads. A Client calls a service: Call takes the
// encoded args struct and returns the encoded result struct. The
// context.Context of a call gives it its deadline (sent downstream as
// Weft's deadline) and metainfo (WithPersistent, WithTransient);
// cancelling it ends the call at once. Calls wait on a channel fed by
// Weft's completion callback, so a goroutine waiting for an answer holds
// no OS thread. Errors are *Error (Weft's Code and message), and a
// declared IDL exception is an *Exception.
//
// Serve runs a server whose calls a Handler answers, on a goroutine per
// call; the answer may come later from any goroutine.
//
// Package weftthrift encodes Apache-generated structs for both.
//
// Building needs the header and the library: with
// CGO_LDFLAGS="-L<dir of libweft.so>" (and LD_LIBRARY_PATH or an rpath to
// run). The header is found in ../include.
//
//	rt, _ := weft.NewRuntime(0)
//	c, _ := weft.NewClient(rt, weft.ClientOptions{
//		Addresses: []string{"127.0.0.1:9090"},
//		Service:   "Echo",
//	})
//	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
//	defer cancel()
//	ctx = weft.WithPersistent(ctx, "trace", "abc")
//	var res echo.EchoAddResult
//	err := weftthrift.Call(ctx, c, "add", &echo.EchoAddArgs{A: 2, B: 3}, &res)
package weft
