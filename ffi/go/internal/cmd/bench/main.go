// Command bench compares, in one run and against the same Weft server,
// calls made through the shim from Go (package weft) with calls made by
// Apache Thrift's own Go client (TSocket, framed, binary; one connection
// per goroutine, as its clients are not safe for concurrent use). Run by
// `WEFT_FFI_BENCH=1 cargo test -p weft-ffi --release --test go go_bench`,
// which starts the server; prints one line per client and method.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	weft "github.com/weft-rpc/weft/ffi/go"
	"github.com/weft-rpc/weft/ffi/go/internal/gen/echo"
	"github.com/weft-rpc/weft/ffi/go/weftthrift"
)

var (
	addr     = flag.String("addr", "", "the Weft echo server")
	conc     = flag.Int("c", 16, "concurrent callers")
	duration = flag.Duration("d", 3*time.Second, "measured time per cell")
	profile  = flag.String("cpuprofile", "", "write a CPU profile of the run here")
	only     = flag.String("only", "", "run only the cells whose client name contains this")
)

func payload() *echo.Payload {
	blob := make([]byte, 1024)
	for i := range blob {
		blob[i] = byte(i)
	}
	return &echo.Payload{Text: "hello", Blob: blob, Count: 42, Ratio: math.Pi,
		Tags: []string{"a", "b"}, Scores: map[string]int64{"x": 1},
		Inner: &echo.Inner{Name: "in", Values: []int32{1, 2, 3}}, Labels: []string{"l"}, Flag: true}
}

// caller makes one call; each goroutine gets its own.
type caller func(ctx context.Context) error

func measure(newCaller func() (caller, func(), error)) (qps float64, p50, p99 time.Duration, err error) {
	callers := make([]caller, *conc)
	for i := range callers {
		c, closeFn, err := newCaller()
		if err != nil {
			return 0, 0, 0, err
		}
		defer closeFn()
		callers[i] = c
	}
	ctx := context.Background()
	// Warm up: connections made, code paths hot.
	for _, c := range callers {
		for range 20 {
			if err := c(ctx); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	lat := make([][]time.Duration, len(callers))
	var firstErr atomic.Value
	start := time.Now()
	for i, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t := time.Now()
				if err := c(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = append(lat[i], time.Since(t))
			}
		}()
	}
	time.Sleep(*duration)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if e := firstErr.Load(); e != nil {
		return 0, 0, 0, e.(error)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return 0, 0, 0, fmt.Errorf("no calls")
	}
	return float64(len(all)) / elapsed.Seconds(), all[len(all)/2], all[len(all)*99/100], nil
}

func main() {
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "bench: -addr is required")
		os.Exit(2)
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
		defer pprof.StopCPUProfile()
	}
	rt, err := weft.NewRuntime(0)
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	conf := &thrift.TConfiguration{}
	type method struct {
		name  string
		weft  func(c *weft.Client) caller
		apach func(c *echo.EchoClient) caller
	}
	p := payload()
	methods := []method{
		{"add",
			func(c *weft.Client) caller {
				return func(ctx context.Context) error {
					var r echo.EchoAddResult
					return weftthrift.Call(ctx, c, "add", &echo.EchoAddArgs{A: 1, B: 2}, &r)
				}
			},
			func(c *echo.EchoClient) caller {
				return func(ctx context.Context) error { _, err := c.Add(ctx, 1, 2); return err }
			}},
		{"echo-1KiB",
			func(c *weft.Client) caller {
				return func(ctx context.Context) error {
					var r echo.EchoEchoResult
					return weftthrift.Call(ctx, c, "echo", &echo.EchoEchoArgs{Payload: p}, &r)
				}
			},
			func(c *echo.EchoClient) caller {
				return func(ctx context.Context) error { _, err := c.Echo(ctx, p); return err }
			}},
	}
	shim := func(t weft.Transport, m method) func() (caller, func(), error) {
		var once sync.Once
		var shared *weft.Client
		var serr error
		return func() (caller, func(), error) {
			// One client shared by all goroutines, as a program would.
			once.Do(func() {
				shared, serr = weft.NewClient(rt, weft.ClientOptions{Addresses: []string{*addr}, Service: "Echo", Transport: t})
			})
			if serr != nil {
				return nil, nil, serr
			}
			return m.weft(shared), shared.Close, nil
		}
	}
	apache := func(m method) func() (caller, func(), error) {
		return func() (caller, func(), error) {
			sock := thrift.NewTSocketConf(*addr, conf)
			trans := thrift.NewTFramedTransportConf(sock, conf)
			if err := trans.Open(); err != nil {
				return nil, nil, err
			}
			c := echo.NewEchoClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(conf))
			return m.apach(c), func() { trans.Close() }, nil
		}
	}
	fmt.Printf("%-28s %-10s %12s %10s %10s\n", "client", "method", "QPS", "p50", "p99")
	for _, m := range methods {
		for _, cell := range []struct {
			name string
			mk   func() (caller, func(), error)
		}{
			{"weft-go shim, ttheader", shim(weft.TTHeader, m)},
			{"weft-go shim, framed", shim(weft.Framed, m)},
			{"apache go, framed", apache(m)},
		} {
			if !strings.Contains(cell.name, *only) {
				continue
			}
			qps, p50, p99, err := measure(cell.mk)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench %s %s: %v\n", cell.name, m.name, err)
				pprof.StopCPUProfile()
				os.Exit(1)
			}
			fmt.Printf("%-28s %-10s %12.0f %10v %10v\n", cell.name, m.name, qps, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
		}
	}
	fmt.Printf("(c=%d goroutines, %v per cell, GOMAXPROCS=%d)\n", *conc, *duration, runtime.GOMAXPROCS(0))
}
