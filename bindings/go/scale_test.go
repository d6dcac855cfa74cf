package parallelagents

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freePort is a TCP port on 127.0.0.1 that nothing listens on (just now).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// startRedis starts a throwaway redis-server on a free port (no persistence, its files
// in a temporary directory), killed when the test ends, and returns its URL. Without
// redis-server on PATH the test is skipped, loudly, or fails if CI is set.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not on PATH: the Redis rate limiter is NOT TESTED (apt-get install redis-server)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	port := freePort(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", logPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("redis-server did not listen on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "redis://" + addr + "/0"
}

// startRecorder is an agent that records when each call starts.
type startRecorder struct {
	mu     sync.Mutex
	starts []time.Time
}

func (s *startRecorder) agent() AgentFunc {
	return func(q string, _ int) (string, error) {
		s.mu.Lock()
		s.starts = append(s.starts, time.Now())
		s.mu.Unlock()
		return "ok: " + q, nil
	}
}

// runTwoExecutors runs n questions on each of two executors at once and checks that
// every call answered.
func runTwoExecutors(t *testing.T, a, b *Executor, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ex := range []*Executor{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := ex.Run(context.Background(), questions(fmt.Sprintf("executor %d", i), n))
			if err == nil {
				for _, r := range rs {
					if !r.OK() {
						err = fmt.Errorf("result %d: %+v", r.Index, r)
						break
					}
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRedisRateLimiterSharedByTwoExecutors(t *testing.T) {
	url := startRedis(t)
	lim, err := NewRedisRateLimiter(url, "pagent-go-test", 600, 0) // 10 starts per second
	if err != nil {
		t.Fatal(err)
	}
	var rec startRecorder
	cfg := Config{Agent: rec.agent(), MaxConcurrency: 16, RateLimiter: lim}
	a := newExec(t, cfg)
	b := newExec(t, cfg)
	// The executors keep their own references: closing the Go limiter changes nothing.
	if err := lim.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lim.Close(); err != nil {
		t.Fatal("a second Close:", err)
	}
	start := time.Now()
	runTwoExecutors(t, a, b, 20)
	took := time.Since(start)
	if len(rec.starts) != 40 {
		t.Fatalf("%d calls started, want 40", len(rec.starts))
	}
	t.Logf("40 calls through one Redis budget of 600/min took %v", took)
	if took < 3500*time.Millisecond {
		t.Fatalf("40 calls at 10/s took %v (< 3.5 s): the Redis budget was not shared", took)
	}
	if took > 20*time.Second {
		t.Fatalf("40 calls at 10/s took %v: the budget was not used", took)
	}
	if _, err := New(cfg); !errors.Is(err, ErrLimiterClosed) {
		t.Fatalf("New with a closed limiter: %v", err)
	}
}

// Two limiters on one Redis key, as two processes would have: each leases its share of
// the same budget from Redis.
func TestRedisRateLimitersOnOneKey(t *testing.T) {
	url := startRedis(t)
	var rec startRecorder
	exs := make([]*Executor, 2)
	for i := range exs {
		lim, err := NewRedisRateLimiter(url, "pagent-go-two", 600, 0)
		if err != nil {
			t.Fatal(err)
		}
		exs[i] = newExec(t, Config{Agent: rec.agent(), MaxConcurrency: 16, RateLimiter: lim})
		lim.Close()
	}
	start := time.Now()
	runTwoExecutors(t, exs[0], exs[1], 20)
	took := time.Since(start)
	t.Logf("40 calls through two limiters on one Redis key of 600/min took %v", took)
	if len(rec.starts) != 40 || took < 3500*time.Millisecond || took > 20*time.Second {
		t.Fatalf("%d calls in %v; want 40 in about 4 s", len(rec.starts), took)
	}
}

func TestRedisRateLimiterErrors(t *testing.T) {
	port := freePort(t) // closed: nothing listens there
	_, err := NewRedisRateLimiter(fmt.Sprintf("redis://user:s3cret@127.0.0.1:%d/0", port), "k", 60, 0)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("unreachable Redis: %T %v, want *Error", err, err)
	}
	if !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("unreachable Redis: status %v", e.Status)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", port)) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error should name the address and hide the password: %v", err)
	}
	for name, f := range map[string]func() (*RateLimiter, error){
		"empty key":     func() (*RateLimiter, error) { return NewRedisRateLimiter("redis://127.0.0.1:1/0", "", 60, 0) },
		"rpm 0":         func() (*RateLimiter, error) { return NewRedisRateLimiter("redis://127.0.0.1:1/0", "k", 0, 0) },
		"bad URL":       func() (*RateLimiter, error) { return NewRedisRateLimiter("not a url", "k", 60, 0) },
		"local rpm 0":   func() (*RateLimiter, error) { return NewRateLimiter(0, 1) },
		"local burst<0": func() (*RateLimiter, error) { return NewRateLimiter(60, -1) },
	} {
		l, err := f()
		if l != nil || !errors.Is(err, ErrInvalidArg) && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, %v; want an error", name, l, err)
		}
	}
}

func TestLocalRateLimiterSharedByTwoExecutors(t *testing.T) {
	lim, err := NewRateLimiter(600, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	var rec startRecorder
	cfg := Config{Agent: rec.agent(), MaxConcurrency: 8, RateLimiter: lim}
	a, b := newExec(t, cfg), newExec(t, cfg)
	start := time.Now()
	runTwoExecutors(t, a, b, 5)
	if took := time.Since(start); took < 850*time.Millisecond {
		t.Fatalf("10 starts at 10/s took %v: the limiter was not shared", took)
	}
	bad := cfg
	bad.RateLimit = 5
	if _, err := New(bad); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("RateLimiter and RateLimit both set: %v", err)
	}
}

// countingAgent answers "answer to <q>" and counts its calls.
func countingAgent(calls *atomic.Int64) AgentFunc {
	return func(q string, _ int) (string, error) {
		calls.Add(1)
		return "answer to " + q, nil
	}
}

func TestJournalReplaysByID(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "run.journal")
	var calls atomic.Int64
	agent := countingAgent(&calls)
	ids, qs := make([]string, 50), make([]string, 50)
	for i := range ids {
		ids[i], qs[i] = fmt.Sprintf("doc-%03d", i), fmt.Sprintf("question %d", i)
	}
	check := func(rs []Result, ids, qs []string) {
		t.Helper()
		if len(rs) != len(ids) {
			t.Fatalf("%d results for %d questions", len(rs), len(ids))
		}
		for i, r := range rs {
			if r.Index != i || r.ID != ids[i] || r.Question != qs[i] || !r.OK() || r.Answer != "answer to "+qs[i] || r.Retryable {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
	}

	first, err := New(Config{Agent: agent, MaxConcurrency: 8, Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := first.RunIDs(context.Background(), ids, qs)
	if err != nil {
		t.Fatal(err)
	}
	check(rs, ids, qs)
	for _, r := range rs {
		if r.Replayed {
			t.Fatalf("a first run replayed %+v", r)
		}
	}
	if n := calls.Load(); n != 50 {
		t.Fatalf("%d calls, want 50", n)
	}
	// One holder at a time.
	if _, err := New(Config{Agent: agent, Journal: journal}); !errors.Is(err, ErrJournalLocked) {
		t.Fatalf("a second executor on a held journal: %v", err)
	}
	first.Close()

	// A new executor on the same journal, the same 50 in reverse order and one more.
	ids2, qs2 := []string{"doc-new"}, []string{"a new question"}
	for i := 49; i >= 0; i-- {
		ids2, qs2 = append(ids2, ids[i]), append(qs2, qs[i])
	}
	second := newExec(t, Config{Agent: agent, MaxConcurrency: 8, Journal: journal})
	rs, err = second.RunIDs(context.Background(), ids2, qs2)
	if err != nil {
		t.Fatal(err)
	}
	check(rs, ids2, qs2)
	if n := calls.Load(); n != 51 {
		t.Fatalf("%d calls in all, want 51 (50 replayed, 1 new)", n)
	}
	replayed := 0
	for _, r := range rs {
		if r.Replayed {
			replayed++
		}
	}
	if replayed != 50 || rs[0].Replayed {
		t.Fatalf("%d replayed (want 50, the new one not): %+v", replayed, rs[0])
	}

	// The stream variant replays too, and carries the ids.
	ch, err := second.StreamIDs(context.Background(), ids[:5], qs[:5])
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for r := range ch {
		got++
		if !r.Replayed || r.ID != ids[r.Index] || r.Answer != "answer to "+qs[r.Index] {
			t.Fatalf("streamed %+v", r)
		}
	}
	if got != 5 || calls.Load() != 51 {
		t.Fatalf("streamed %d results, %d calls", got, calls.Load())
	}

	// Errors: a duplicate id, mismatched lengths, a NUL byte.
	_, err = second.RunIDs(context.Background(), []string{"x", "y", "x"}, []string{"a", "b", "c"})
	var e *Error
	if !errors.Is(err, ErrDuplicateID) || !errors.As(err, &e) || !strings.Contains(e.Message, "x") {
		t.Fatalf("a duplicate id: %v", err)
	}
	if _, err := second.StreamIDs(context.Background(), []string{"x", "x"}, []string{"a", "b"}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("a duplicate id in a stream: %v", err)
	}
	if _, err := second.RunIDs(context.Background(), []string{"x"}, []string{"a", "b"}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("1 id for 2 questions: %v", err)
	}
	if _, err := second.RunIDs(context.Background(), []string{"x\x00"}, []string{"a"}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("an id with a NUL byte: %v", err)
	}
	if calls.Load() != 51 {
		t.Fatalf("a failed submit called the agent: %d calls", calls.Load())
	}
}

func TestIDsWithoutJournalAndRetryable(t *testing.T) {
	var calls atomic.Int64
	ex := newExec(t, Config{Agent: AgentFunc(func(q string, _ int) (string, error) {
		calls.Add(1)
		switch q {
		case "flaky":
			return "", Retryable(errors.New("try later"))
		case "broken":
			return "", errors.New("no")
		}
		return q, nil
	})})
	rs, err := ex.Run(context.Background(), []string{"a", "flaky", "broken"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		id        string
		ok, retry bool
	}{{"0", true, false}, {"1", false, true}, {"2", false, false}} {
		r := rs[i]
		if r.ID != want.id || r.OK() != want.ok || r.Retryable != want.retry || r.Replayed {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	rs, err = ex.RunIDs(context.Background(), []string{"k"}, []string{"a"})
	if err != nil || rs[0].ID != "k" {
		t.Fatalf("%+v %v", rs, err)
	}
	if rs, err := ex.RunIDs(context.Background(), nil, nil); err != nil || len(rs) != 0 {
		t.Fatalf("no ids: %v %v", rs, err)
	}
}

func TestJournalRerunFailed(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "rerun.journal")
	var flakyCalls atomic.Int64
	agent := AgentFunc(func(q string, _ int) (string, error) {
		if q == "flaky" && flakyCalls.Add(1) == 1 {
			return "", Retryable(errors.New("rate limited"))
		}
		return "answer to " + q, nil
	})
	ids, qs := []string{"a", "f"}, []string{"steady", "flaky"}
	run := func(rerun bool) []Result {
		t.Helper()
		ex, err := New(Config{Agent: agent, Journal: journal, JournalRerunFailed: rerun})
		if err != nil {
			t.Fatal(err)
		}
		defer ex.Close()
		rs, err := ex.RunIDs(context.Background(), ids, qs)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	rs := run(false)
	if !rs[0].OK() || rs[1].OK() || !rs[1].Retryable {
		t.Fatalf("first run: %+v", rs)
	}
	rs = run(false) // replays the failure as it was
	if !rs[1].Replayed || rs[1].OK() || !rs[1].Retryable || flakyCalls.Load() != 1 {
		t.Fatalf("replay: %+v (%d calls)", rs, flakyCalls.Load())
	}
	rs = run(true) // runs the retryable failure again
	if !rs[0].Replayed || rs[1].Replayed || !rs[1].OK() || flakyCalls.Load() != 2 {
		t.Fatalf("rerun of failures: %+v (%d calls)", rs, flakyCalls.Load())
	}
}

func TestJournalErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Config{Agent: MockAgent{}, Journal: filepath.Join(dir, "missing-dir", "x", "j")}); !errors.Is(err, ErrJournal) {
		t.Fatalf("a journal in a missing directory: %v", err)
	}
	notJournal := filepath.Join(dir, "text")
	if err := os.WriteFile(notJournal, []byte("not a journal, just text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Agent: MockAgent{}, Journal: notJournal}); !errors.Is(err, ErrJournal) {
		t.Fatalf("a file that is no journal: %v", err)
	}
	if _, err := New(Config{Agent: MockAgent{}, Journal: "bad\x00path"}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("a path with a NUL byte: %v", err)
	}
}
