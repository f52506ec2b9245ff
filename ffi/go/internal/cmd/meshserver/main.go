// Command meshserver is the Go hop of the mesh test (ffi/tests/mesh.rs):
// a Python client calls a Weft Rust service, which calls this Echo server
// through the shim. It prints "listening <addr>", serves until its stdin
// closes, and for each `metainfo` call checks what crossed the hops: the
// persistent value, and a deadline no later than the Python client's
// (which the client sends as persistent "mesh-deadline-unix-ms", stamped
// as its call enters the library) beyond the hops' transit time. It prints "mesh-call ok ..." or refuses the
// call with the reason, and sends its deadline back as backward metainfo
// "go-deadline-unix-ms".
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	weft "github.com/weft-rpc/weft/ffi/go"
	"github.com/weft-rpc/weft/ffi/go/internal/echoserver"
)

// slack allows for the transit time of the two hops. Weft sends a
// deadline downstream as the time left when the frame is encoded (rounded
// down to a millisecond), and the receiver counts it from when it decodes
// the frame: each hop's deadline moves later by the time the frame spent
// in between (writer, loopback, reader), minus up to a millisecond. On a
// loaded 2-core machine that was seen at +3 ms over two hops.
const slack = 25 * time.Millisecond

func main() {
	rt, err := weft.NewRuntime(1)
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	h := &echoserver.Handler{OnCall: func(ctx context.Context, call *weft.Call, key string) string {
		value, _ := weft.Persistent(ctx, key)
		dl, ok := ctx.Deadline()
		if !ok {
			say("mesh-call refused: no deadline")
			return "no deadline reached the Go server"
		}
		_ = call.SetBackward("go-deadline-unix-ms", strconv.FormatInt(dl.UnixMilli(), 10))
		bound, _ := weft.Persistent(ctx, "mesh-deadline-unix-ms")
		ms, err := strconv.ParseInt(bound, 10, 64)
		if err != nil {
			say("mesh-call refused: no mesh-deadline-unix-ms (%q)", bound)
			return "no mesh-deadline-unix-ms persistent value"
		}
		client := time.UnixMilli(ms)
		left := time.Until(dl)
		line := fmt.Sprintf("key=%s value=%q deadline_unix_ms=%d client_deadline_unix_ms=%d remaining_ms=%d",
			key, value, dl.UnixMilli(), ms, left.Milliseconds())
		if hop, ok := call.Transient("mesh-hop"); ok {
			say("mesh-call refused: the Python client's transient value crossed two hops (%q) %s", hop, line)
			return "transient metainfo crossed two hops"
		}
		if dl.After(client.Add(slack)) {
			say("mesh-call refused: deadline later than the client's %s", line)
			return "the Go server's deadline is later than the Python client's"
		}
		if dl.Before(client.Add(-time.Second)) {
			say("mesh-call refused: deadline far earlier than the client's %s", line)
			return "the Go server's deadline is not the Python client's"
		}
		say("mesh-call ok %s", line)
		return ""
	}}
	srv, err := weft.Serve(rt, "127.0.0.1:0", h, nil)
	if err != nil {
		fail(err)
	}
	say("listening %s", srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := srv.Shutdown(); err != nil {
		fail(err)
	}
	rt.Close()
	say("done")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "meshserver:", err)
	os.Exit(1)
}
