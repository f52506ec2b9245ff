// Weft from Go: a server whose handler is a Go function and a client
// calling it, both through the shim (libweft) via the cgo binding in
// ffi/go. The messages are those of calc.thrift's add,
//
//	service Calc { i64 add(1: i64 a, 2: i64 b) }
//
// encoded by hand in Thrift's binary protocol (a real program uses Apache
// Thrift's Go library: see ffi/go/weftthrift). Run from ffi/examples/go:
//
//	cargo build -p weft-ffi
//	CGO_LDFLAGS="-L$PWD/../../../target/debug -Wl,-rpath,$PWD/../../../target/debug" go run .
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
)

// i64Fields encodes a binary-protocol struct of i64 fields (id, value)...
func i64Fields(fields ...int64) []byte {
	var b []byte
	for i := 0; i+1 < len(fields); i += 2 {
		b = append(b, 10, byte(fields[i]>>8), byte(fields[i]))
		b = binary.BigEndian.AppendUint64(b, uint64(fields[i+1]))
	}
	return append(b, 0)
}

// i64Field reads field id of such a struct.
func i64Field(b []byte, id int16) (int64, bool) {
	for at := 0; at+11 <= len(b) && b[at] == 10; at += 11 {
		if int16(binary.BigEndian.Uint16(b[at+1:])) == id {
			return int64(binary.BigEndian.Uint64(b[at+3:])), true
		}
	}
	return 0, false
}

func main() {
	rt, err := weft.NewRuntime(0)
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()

	// The server: one handler for every method; it may answer from any
	// goroutine, and ctx carries the caller's deadline.
	srv, err := weft.Serve(rt, "127.0.0.1:0", weft.HandlerFunc(func(ctx context.Context, call *weft.Call) {
		if call.Method != "add" {
			_ = call.Fail(weft.Unimplemented, "only add here")
			return
		}
		a, _ := i64Field(call.Args, 1)
		b, _ := i64Field(call.Args, 2)
		_ = call.Reply(i64Fields(0, a+b)) // field 0: success
	}), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	fmt.Println("serving on", srv.Addr())

	c, err := weft.NewClient(rt, weft.ClientOptions{Addresses: []string{srv.Addr()}, Service: "Calc"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	reply, err := c.Call(ctx, "add", i64Fields(1, 40, 2, 2))
	if err != nil {
		log.Fatal(err)
	}
	sum, _ := i64Field(reply.Result, 0)
	fmt.Println("add(40, 2) =", sum)
	if _, err := c.Call(ctx, "sub", i64Fields(1, 40, 2, 2)); err != nil {
		fmt.Println("sub(40, 2):", weft.CodeOf(err), "-", err)
	}
	if err := srv.Shutdown(); err != nil {
		log.Fatal(err)
	}
}
