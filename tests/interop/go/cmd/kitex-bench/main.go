// Command kitex-bench is Kitex's side of Weft's load generator
// (benches/, weft-benches): a Kitex server or client of benches/idl/bench.thrift
// speaking the generator's subprocess protocol on standard input and output,
// as the generator's own `server` and `client` subcommands do.
//
//	kitex-bench server IMPL THREADS   prints "ADDR host:port"; answers each SNAP
//	                                  line with a Spent JSON line; ends at EXIT
//	kitex-bench client SPEC           SPEC is the generator's ClientSpec JSON;
//	                                  prints MEASURE, DONE, then RESULT {...}
//
// IMPL ends in "-mux" for Kitex's multiplexed server and client, else the
// default server and the long-connection pool over TTHeader framed. GOMAXPROCS
// is THREADS (the spec's threads for a client), as the Rust processes run that
// many Tokio workers.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/connpool"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/transmeta"
	"github.com/cloudwego/kitex/server"
	"github.com/cloudwego/kitex/transport"

	"weftinterop/kitex_gen/bench/bench"
)

// spent is what the process has spent so far (the generator's Spent).
type spent struct {
	CPUs       float64 `json:"cpu_s"`
	Allocs     uint64  `json:"allocs"`
	AllocBytes uint64  `json:"alloc_bytes"`
	Calls      uint64  `json:"calls"`
}

func spentNow(calls uint64) spent {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return spent{CPUs: tv(ru.Utime) + tv(ru.Stime), Allocs: ms.Mallocs, AllocBytes: ms.TotalAlloc, Calls: calls}
}

// perCall is the generator's PerCall.
type perCall struct {
	CPUus      float64 `json:"cpu_us"`
	Allocs     float64 `json:"allocs"`
	AllocBytes float64 `json:"alloc_bytes"`
}

func costs(a, b spent, calls uint64) perCall {
	n := float64(max(calls, 1))
	return perCall{
		CPUus:      (b.CPUs - a.CPUs) * 1e6 / n,
		Allocs:     float64(b.Allocs-a.Allocs) / n,
		AllocBytes: float64(b.AllocBytes-a.AllocBytes) / n,
	}
}

func main() {
	klog.SetLevel(klog.LevelError)
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: kitex-bench server IMPL THREADS | client SPEC")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		threads := 2
		if len(os.Args) > 3 {
			fmt.Sscan(os.Args[3], &threads)
		}
		err = runServer(os.Args[2], threads)
	case "client":
		err = runClient(os.Args[2])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kitex-bench:", err)
		os.Exit(1)
	}
}

// ===== server =====

type handler struct{ calls atomic.Uint64 }

func (h *handler) Echo(ctx context.Context, msg string) (string, error) {
	h.calls.Add(1)
	return msg, nil
}

func (h *handler) EchoBin(ctx context.Context, data []byte) ([]byte, error) {
	h.calls.Add(1)
	return data, nil
}

func runServer(imp string, threads int) error {
	runtime.GOMAXPROCS(threads)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h := &handler{}
	opts := []server.Option{
		server.WithListener(ln),
		server.WithMetaHandler(transmeta.ServerTTHeaderHandler),
		server.WithExitWaitTime(100 * time.Millisecond),
	}
	if strings.HasSuffix(imp, "-mux") {
		opts = append(opts, server.WithMuxTransport())
	}
	svr := bench.NewServer(h, opts...)
	go func() {
		if err := svr.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "kitex-bench server:", err)
			os.Exit(1)
		}
	}()
	// Kitex accepts once Run has started its listener.
	time.Sleep(50 * time.Millisecond)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ADDR %s\n", ln.Addr())
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "SNAP":
			b, _ := json.Marshal(spentNow(h.calls.Load()))
			out.Write(append(b, '\n'))
			out.Flush()
		case "EXIT":
			os.Exit(0)
		}
	}
	os.Exit(0)
	return nil
}

// ===== client =====

// clientSpec is the generator's ClientSpec.
type clientSpec struct {
	Imp         string  `json:"imp"`
	Addr        string  `json:"addr"`
	Concurrency int     `json:"concurrency"`
	Payload     int     `json:"payload"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`
	Threads     int     `json:"threads"`
}

// clientResult is the generator's ClientResult.
type clientResult struct {
	Calls    uint64  `json:"calls"`
	Errors   uint64  `json:"errors"`
	ElapsedS float64 `json:"elapsed_s"`
	QPS      float64 `json:"qps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	MaxUs    float64 `json:"max_us"`
	MeanUs   float64 `json:"mean_us"`
	Cost     perCall `json:"cost"`
}

const (
	warmup int32 = iota
	measure
	stop
)

func runClient(specJSON string) error {
	var spec clientSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("client spec: %w", err)
	}
	runtime.GOMAXPROCS(max(spec.Threads, 1))
	opts := []client.Option{
		client.WithHostPorts(spec.Addr),
		client.WithMetaHandler(transmeta.ClientTTHeaderHandler),
		// As the generator raises Volo's: a stall shows as latency.
		client.WithRPCTimeout(10 * time.Second),
		client.WithConnectTimeout(2 * time.Second),
	}
	if strings.HasSuffix(spec.Imp, "-mux") {
		// One connection, as Weft's multiplexed client uses.
		opts = append(opts, client.WithMuxConnection(1))
	} else {
		// Idle connections kept as Weft's pooled client keeps them in the
		// generator: max(64, C).
		idle := max(64, spec.Concurrency)
		opts = append(opts,
			client.WithTransportProtocol(transport.TTHeaderFramed),
			client.WithLongConnection(connpool.IdleConfig{
				MaxIdlePerAddress: idle, MaxIdleGlobal: idle, MaxIdleTimeout: time.Minute,
			}))
	}
	c, err := bench.NewClient("Bench", opts...)
	if err != nil {
		return err
	}
	b := make([]byte, spec.Payload)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	msg := string(b)

	var phase atomic.Int32
	lat := make([][]uint64, spec.Concurrency)
	errs := make([]uint64, spec.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < spec.Concurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mine := make([]uint64, 0, 1<<16)
			for {
				p := phase.Load()
				if p == stop {
					break
				}
				start := time.Now()
				got, err := c.Echo(context.Background(), msg)
				took := time.Since(start)
				if p != measure || phase.Load() != measure {
					continue
				}
				if err == nil && len(got) != len(msg) {
					err = fmt.Errorf("short echo")
				}
				if err != nil {
					if errs[i] == 0 {
						fmt.Fprintln(os.Stderr, "call failed:", err)
					}
					errs[i]++
					continue
				}
				mine = append(mine, uint64(max(took.Microseconds(), 1)))
			}
			lat[i] = mine
		}(i)
	}

	time.Sleep(time.Duration(spec.WarmupS * float64(time.Second)))
	before := spentNow(0)
	started := time.Now()
	phase.Store(measure)
	fmt.Println("MEASURE")
	time.Sleep(time.Duration(spec.DurationS * float64(time.Second)))
	phase.Store(stop)
	elapsed := time.Since(started).Seconds()
	after := spentNow(0)
	fmt.Println("DONE")
	wg.Wait()

	var all []uint64
	var errors uint64
	for i := range lat {
		all = append(all, lat[i]...)
		errors += errs[i]
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	n := uint64(len(all))
	// The nearest-rank quantile, as an HDR histogram reports it.
	q := func(f float64) float64 {
		if n == 0 {
			return 0
		}
		k := uint64(f*float64(n)+0.999999) - 1
		return float64(all[min(k, n-1)])
	}
	var sum float64
	for _, v := range all {
		sum += float64(v)
	}
	r := clientResult{
		Calls:    n,
		Errors:   errors,
		ElapsedS: elapsed,
		QPS:      float64(n) / elapsed,
		P50us:    q(0.50),
		P99us:    q(0.99),
		P999us:   q(0.999),
		MaxUs:    q(1.0),
		MeanUs:   sum / float64(max(n, 1)),
		Cost:     costs(before, after, n),
	}
	j, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Printf("RESULT %s\n", j)
	os.Exit(0)
	return nil
}
