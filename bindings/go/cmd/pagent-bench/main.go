// pagent-bench measures the Go module against plain Go, in one run:
//
//   - overhead: N no-op calls (default 1,000,000) at C in flight (default 1,000) through
//     the module (the library's mock agent with no latency; a Go AgentFunc called back
//     through cgo; the same as Async, one goroutine per call) against goroutine-per-call
//     behind a semaphore in plain Go, the reference;
//   - latency: N calls (default 10,000) that each take 100 ms at C = 1,000 in flight,
//     against the ideal ceil(N/C) x latency, for the module (mock agent; Async with
//     time.Sleep; a blocking AgentFunc with time.Sleep) and for plain Go.
//
// Every figure is the median of -reps runs, variants interleaved so that a change in the
// machine's load hits all of them; every result is checked (count, index, answer), and a
// lost or wrong one exits 1. Figures are printed, never asserted; CPU time per call (all
// threads, getrusage) moves less with the machine's load than wall time does. Each
// measurement is also printed as a key=value line.
//
//	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib" \
//	    go run ./cmd/pagent-bench [-quick]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	pa "example.invalid/parallel-agents/bindings/go"
)

var (
	overheadN = flag.Int("overhead-n", 1_000_000, "no-op calls per overhead run")
	latencyN  = flag.Int("latency-n", 10_000, "calls per latency run")
	inFlight  = flag.Int("c", 1_000, "calls in flight (max_concurrency, semaphore size)")
	latency   = flag.Duration("latency", 100*time.Millisecond, "latency of each call in the latency part")
	reps      = flag.Int("reps", 3, "repetitions; the median is reported")
	quick     = flag.Bool("quick", false, "a smoke run: 20,000 no-op calls, 2,000 latency calls, 1 repetition")
)

// plainGo runs fn for every question in its own goroutine, at most c at once.
func plainGo(questions []string, c int, fn func(string, int) (string, error)) []string {
	out := make([]string, len(questions))
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	for i, q := range questions {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			a, err := fn(q, i)
			if err == nil {
				out[i] = a
			}
		}()
	}
	wg.Wait()
	return out
}

func noop(q string, _ int) (string, error) { return q, nil }

// variant is one way of running a workload; run returns the answers by index, want
// says what answer i must be.
type variant struct {
	name string
	run  func(qs []string) ([]string, error)
	want func(i int, q string) string
}

func module(agent pa.Agent, c int) func([]string) ([]string, error) {
	return func(qs []string) ([]string, error) {
		ex, err := pa.New(pa.Config{Agent: agent, MaxConcurrency: c, AgentTimeout: time.Minute})
		if err != nil {
			return nil, err
		}
		defer ex.Close()
		rs, err := ex.Run(context.Background(), qs)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(qs))
		for _, r := range rs {
			if !r.OK() {
				return nil, fmt.Errorf("question %d: %s %s", r.Index, r.Outcome, r.Error)
			}
			out[r.Index] = r.Answer
		}
		return out, nil
	}
}

func moduleStream(agent pa.Agent, c int) func([]string) ([]string, error) {
	return func(qs []string) ([]string, error) {
		ex, err := pa.New(pa.Config{Agent: agent, MaxConcurrency: c, AgentTimeout: time.Minute})
		if err != nil {
			return nil, err
		}
		defer ex.Close()
		out := make([]string, len(qs))
		for r, err := range ex.StreamSeq(context.Background(), qs) {
			if err != nil {
				return nil, err
			}
			if !r.OK() || out[r.Index] != "" {
				return nil, fmt.Errorf("question %d: %s %s (or repeated)", r.Index, r.Outcome, r.Error)
			}
			out[r.Index] = r.Answer
		}
		return out, nil
	}
}

// cpuTime is the process's CPU time so far, user + system, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs every variant reps times, interleaved, checks each run's answers, and
// returns the median wall time and the median CPU time (all threads) of each.
func measure(vs []variant, qs []string) (wall, cpu []time.Duration, err error) {
	times := make([][]time.Duration, len(vs))
	cpus := make([][]time.Duration, len(vs))
	for r := 0; r < *reps; r++ {
		for i, v := range vs {
			runtime.GC()
			start, cpu0 := time.Now(), cpuTime()
			out, err := v.run(qs)
			d, c := time.Since(start), cpuTime()-cpu0
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", v.name, err)
			}
			if len(out) != len(qs) {
				return nil, nil, fmt.Errorf("%s: %d answers for %d questions", v.name, len(out), len(qs))
			}
			for j, q := range qs {
				if w := v.want(j, q); out[j] != w {
					return nil, nil, fmt.Errorf("%s: answer %d is %q, want %q", v.name, j, out[j], w)
				}
			}
			times[i] = append(times[i], d)
			cpus[i] = append(cpus[i], c)
		}
	}
	return medians(times), medians(cpus), nil
}

func medians(xs [][]time.Duration) []time.Duration {
	med := make([]time.Duration, len(xs))
	for i, ts := range xs {
		sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
		med[i] = ts[len(ts)/2]
	}
	return med
}

func questions(n int) []string {
	qs := make([]string, n)
	for i := range qs {
		qs[i] = fmt.Sprintf("q%d", i)
	}
	return qs
}

// key makes a variant's name a key=value token: its words joined by "_".
func key(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}), "_")
}

func run() error {
	flag.Parse()
	if *quick {
		*overheadN, *latencyN, *reps = 20_000, 2_000, 1
	}
	c := *inFlight
	fmt.Printf("pagent-bench: Go %s, GOMAXPROCS %d, library %s, median of %d\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), pa.Version(), *reps)

	// Overhead -------------------------------------------------------------------------
	n := *overheadN
	qs := questions(n)
	mockAnswer := func(i int, q string) string { return fmt.Sprintf("Agent %d answer for '%s'", i, q) }
	echo := func(_ int, q string) string { return q }
	over := []variant{
		{"plain Go (goroutine per call, semaphore)", func(qs []string) ([]string, error) { return plainGo(qs, c, noop), nil }, echo},
		{"module: mock agent, Run", module(pa.MockAgent{}, c), mockAnswer},
		{"module: mock agent, StreamSeq", moduleStream(pa.MockAgent{}, c), mockAnswer},
		{"module: AgentFunc (cgo callback), Run", module(pa.AgentFunc(noop), c), echo},
		{"module: Async(AgentFunc), Run", module(pa.Async(noop), c), echo},
	}
	fmt.Printf("overhead: %d no-op calls, %d in flight\n", n, c)
	meds, cpus, err := measure(over, qs)
	if err != nil {
		return err
	}
	fmt.Printf("  %-44s %10s %12s %12s %14s\n", "variant", "time", "calls/s", "vs plain Go", "CPU us/call")
	ref := float64(n) / meds[0].Seconds()
	perCall := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	for i, v := range over {
		rate := float64(n) / meds[i].Seconds()
		fmt.Printf("  %-44s %10s %12.0f %12.3f %14.2f\n", v.name, meds[i].Round(time.Millisecond), rate, rate/ref, perCall(cpus[i]))
	}
	for i, v := range over {
		rate := float64(n) / meds[i].Seconds()
		fmt.Printf("bench=go_overhead variant=%s n=%d c=%d seconds=%.4f calls_per_s=%.0f ratio_to_plain_go=%.4f cpu_us_per_call=%.3f\n",
			key(v.name), n, c, meds[i].Seconds(), rate, rate/ref, perCall(cpus[i]))
	}

	// Latency --------------------------------------------------------------------------
	n = *latencyN
	qs = questions(n)
	lat := *latency
	sleep := func(q string, _ int) (string, error) { time.Sleep(lat); return q, nil }
	ideal := time.Duration(math.Ceil(float64(n)/float64(c))) * lat
	lv := []variant{
		{"plain Go (goroutine per call, semaphore)", func(qs []string) ([]string, error) { return plainGo(qs, c, sleep), nil }, echo},
		{"module: mock agent (library timer)", module(pa.MockAgent{Latency: lat}, c), mockAnswer},
		{"module: Async(AgentFunc with time.Sleep)", module(pa.Async(sleep), c), echo},
		{"module: AgentFunc with time.Sleep (blocking)", module(pa.AgentFunc(sleep), c), echo},
	}
	fmt.Printf("\nlatency: %d calls of %v, %d in flight; ideal ceil(N/C) x latency = %v\n", n, lat, c, ideal)
	meds, _, err = measure(lv, qs)
	if err != nil {
		return err
	}
	fmt.Printf("  %-44s %10s %10s %12s\n", "variant", "time", "ideal", "efficiency")
	for i, v := range lv {
		fmt.Printf("  %-44s %10s %10s %12.3f\n", v.name, meds[i].Round(time.Millisecond), ideal, ideal.Seconds()/meds[i].Seconds())
	}
	for i, v := range lv {
		fmt.Printf("bench=go_latency variant=%s n=%d c=%d latency_ms=%d seconds=%.4f ideal_seconds=%.4f efficiency=%.4f\n",
			key(v.name), n, c, lat.Milliseconds(), meds[i].Seconds(), ideal.Seconds(), ideal.Seconds()/meds[i].Seconds())
	}
	return pa.Shutdown(time.Second)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pagent-bench:", err)
		os.Exit(1)
	}
}
