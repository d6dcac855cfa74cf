package parallelagents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// The library's explicit stop, once, after every test and example.
	if err := Shutdown(5 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "Shutdown:", err)
		code = 1
	}
	os.Exit(code)
}

// newExec makes an executor closed at the end of the test.
func newExec(t *testing.T, cfg Config) *Executor {
	t.Helper()
	ex, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

func questions(prefix string, n int) []string {
	qs := make([]string, n)
	for i := range qs {
		qs[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return qs
}

func mockAnswer(i int, q string) string { return fmt.Sprintf("Agent %d answer for '%s'", i, q) }

// eventually waits (bounded) for cond; it is no timing assertion, only a wait for an
// event that happens on another thread.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunMockInQuestionOrder(t *testing.T) {
	ex := newExec(t, Config{Agent: MockAgent{}, MaxConcurrency: 16})
	qs := questions("question", 100)
	rs, m, err := ex.RunWithMetrics(context.Background(), qs)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(qs) {
		t.Fatalf("%d results for %d questions", len(rs), len(qs))
	}
	for i, r := range rs {
		if r.Index != i || r.AgentID != i || r.Question != qs[i] || !r.OK() || r.Answer != mockAnswer(i, qs[i]) || r.Error != "" || r.Attempts != 1 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if m.Total != 100 || m.Successful != 100 || m.Attempts != 100 {
		t.Fatalf("batch metrics %+v", m)
	}
	if rs, err := ex.Run(context.Background(), nil); err != nil || len(rs) != 0 {
		t.Fatalf("no questions: %v %v", rs, err)
	}
}

// pendingCall is one started call of an AsyncAgentFunc.
type pendingCall struct {
	question string
	id       int
	p        Pending
}

// heldAgent is a completion-based agent whose calls the test completes itself.
func heldAgent(n int) (AsyncAgentFunc, chan pendingCall) {
	calls := make(chan pendingCall, n)
	return func(q string, id int, p Pending) { calls <- pendingCall{q, id, p} }, calls
}

func TestStreamDeliversInCompletionOrder(t *testing.T) {
	agent, calls := heldAgent(4)
	ex := newExec(t, Config{Agent: agent, MaxConcurrency: 4})
	qs := questions("q", 4)
	ch, err := ex.Stream(context.Background(), qs)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int]Pending{}
	for len(byID) < 4 {
		c := <-calls
		byID[c.id] = c.p
	}
	for _, i := range []int{3, 1, 0, 2} {
		if err := byID[i].Complete("answer " + qs[i]); err != nil {
			t.Fatal(err)
		}
		r := <-ch
		if r.Index != i || r.Answer != "answer "+qs[i] || r.Question != qs[i] {
			t.Fatalf("completed %d, got %+v", i, r)
		}
		// A second completion is harmless and says so.
		if err := byID[i].Complete("again"); !errors.Is(err, ErrStale) {
			t.Fatalf("second Complete: %v, want ErrStale", err)
		}
	}
	if r, ok := <-ch; ok {
		t.Fatalf("extra result %+v", r)
	}
}

func TestStreamSeqAndBreak(t *testing.T) {
	ex := newExec(t, Config{Agent: MockAgent{}, MaxConcurrency: 8})
	qs := questions("seq", 50)
	seen := make([]int, len(qs))
	for r, err := range ex.StreamSeq(context.Background(), qs) {
		if err != nil {
			t.Fatal(err)
		}
		seen[r.Index]++
		if r.Answer != mockAnswer(r.Index, qs[r.Index]) {
			t.Fatalf("%+v", r)
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("question %d came back %d times", i, n)
		}
	}

	// Breaking out cancels the calls still running: here every call hangs but one.
	agent, calls := heldAgent(10)
	ex2 := newExec(t, Config{Agent: agent, MaxConcurrency: 10})
	go func() {
		c := <-calls
		c.p.Complete("first")
	}()
	got := 0
	for r, err := range ex2.StreamSeq(context.Background(), questions("held", 10)) {
		if err != nil || r.Answer != "first" {
			t.Fatalf("%+v %v", r, err)
		}
		got++
		break
	}
	if got != 1 {
		t.Fatalf("got %d", got)
	}
	eventually(t, "the 9 other calls to be cancelled", func() bool {
		m, err := ex2.Metrics()
		return err == nil && m.Cancelled == 9 && m.Successful == 1
	})
}

func TestCancelMidStream(t *testing.T) {
	// Questions "fast N" answer at once; the others hang until cancelled.
	agent := AsyncAgentFunc(func(q string, id int, p Pending) {
		if strings.HasPrefix(q, "fast") {
			p.Complete("done " + q)
		}
	})
	ex := newExec(t, Config{Agent: agent, MaxConcurrency: 100})
	qs := append(questions("fast", 5), questions("slow", 15)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := ex.Stream(ctx, qs)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, len(qs))
	for i := 0; i < 5; i++ {
		r := <-ch
		if !r.OK() || r.Index >= 5 {
			t.Fatalf("before cancel: %+v", r)
		}
		seen[r.Index]++
	}
	cancel()
	cancelled := 0
	for r := range ch {
		seen[r.Index]++
		if r.Outcome != OutcomeCancelled || r.Index < 5 || r.Question != qs[r.Index] {
			t.Fatalf("after cancel: %+v", r)
		}
		cancelled++
	}
	if cancelled != 15 {
		t.Fatalf("%d cancelled, want 15", cancelled)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("question %d came back %d times", i, n)
		}
	}
}

func TestRunContextDeadlineAndCancel(t *testing.T) {
	ex := newExec(t, Config{Agent: MockAgent{HangRate: 1}, MaxConcurrency: 4})
	qs := questions("hang", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rs, err := ex.Run(ctx, qs)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
	if len(rs) != len(qs) {
		t.Fatalf("%d results", len(rs))
	}
	for i, r := range rs {
		if r.Index != i || r.Outcome != OutcomeCancelled {
			t.Fatalf("%+v", r)
		}
	}

	// Already cancelled: nothing runs, every question still comes back.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	rs, err = ex.Run(done, qs)
	if !errors.Is(err, context.Canceled) || len(rs) != len(qs) {
		t.Fatalf("%d results, err %v", len(rs), err)
	}
	for _, r := range rs {
		if r.Outcome != OutcomeCancelled {
			t.Fatalf("%+v", r)
		}
	}
}

func TestConsensus(t *testing.T) {
	ex := newExec(t, Config{Agent: MockAgent{Answers: []string{"Paris"}}, NoEarlyStop: true})
	q := "What is the capital of France?"
	c, err := ex.Consensus(context.Background(), q, 5)
	if err != nil {
		t.Fatal(err)
	}
	if c.Answer != "Paris" || !c.Reached || c.Confidence != 1 || c.Votes != 5 || c.Counted != 5 || len(c.Results) != 5 || c.Metrics.Total != 5 {
		t.Fatalf("%+v", c)
	}
	for i, r := range c.Results {
		if r.Index != i || r.Question != q || r.Answer != "Paris" {
			t.Fatalf("voter %d: %+v", i, r)
		}
	}
	if m, err := ex.MetricsFor(q); err != nil || m.Total != 5 {
		t.Fatalf("MetricsFor: %+v %v", m, err)
	}

	// A Go agent whose voters agree in substance, not in form.
	vote := AgentFunc(func(q string, id int) (string, error) {
		if id%2 == 0 {
			return "42", nil
		}
		return "Forty-two", nil
	})
	ex2 := newExec(t, Config{Agent: vote, NoEarlyStop: true, MaxConcurrency: 8})
	c, err = ex2.Consensus(context.Background(), "What is 6 x 7?", 5)
	if err != nil {
		t.Fatal(err)
	}
	if c.Answer != "42" || c.Votes != 3 || c.Counted != 5 || !c.Reached || c.EarlyStopped {
		t.Fatalf("%+v", c)
	}

	// A cancelled context returns at once.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ex2.Consensus(done, "q", 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	// A hanging round is left behind when the deadline passes.
	ex3 := newExec(t, Config{Agent: MockAgent{HangRate: 1}, AgentTimeout: 200 * time.Millisecond})
	ctx, cancel3 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel3()
	if _, err := ex3.Consensus(ctx, "q", 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestPool(t *testing.T) {
	ex := newExec(t, Config{
		Pool:        []Agent{MockAgent{Answers: []string{"a"}}, MockAgent{Answers: []string{"b"}}, AgentFunc(func(string, int) (string, error) { return "c", nil })},
		NoEarlyStop: true,
	})
	c, err := ex.Consensus(context.Background(), "which?", 3)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Results[0].Answer, c.Results[1].Answer, c.Results[2].Answer}
	if strings.Join(got, ",") != "a,b,c" || c.Reached || c.Counted != 3 || c.Votes != 1 {
		t.Fatalf("%v %+v", got, c)
	}
}

func TestAgentFuncErrorsAndRetries(t *testing.T) {
	var tries sync.Map // question -> *atomic.Int32
	agent := AgentFunc(func(q string, id int) (string, error) {
		v, _ := tries.LoadOrStore(q, new(atomic.Int32))
		n := v.(*atomic.Int32).Add(1)
		switch q {
		case "fail":
			return "", errors.New("no such thing")
		case "flaky":
			if n == 1 {
				return "", Retryable(errors.New("try again"))
			}
		case "nul":
			return "a\x00b", nil
		}
		return "ok: " + q, nil
	})
	ex := newExec(t, Config{Agent: agent, MaxRetries: 2, RetryBackoffBase: time.Millisecond, RetryBackoffCap: time.Millisecond})
	rs, err := ex.Run(context.Background(), []string{"fine", "fail", "flaky", "nul"})
	if err != nil {
		t.Fatal(err)
	}
	if !rs[0].OK() || rs[0].Answer != "ok: fine" || rs[0].Attempts != 1 {
		t.Fatalf("%+v", rs[0])
	}
	if rs[1].Outcome != OutcomeFailed || !strings.Contains(rs[1].Error, "no such thing") || rs[1].Attempts != 1 {
		t.Fatalf("%+v", rs[1])
	}
	if !rs[2].OK() || rs[2].Answer != "ok: flaky" || rs[2].Attempts != 2 {
		t.Fatalf("%+v", rs[2])
	}
	if rs[3].Outcome != OutcomeFailed || !strings.Contains(rs[3].Error, "NUL") {
		t.Fatalf("%+v", rs[3])
	}
}

func TestPanickingAgentsFailTheirCall(t *testing.T) {
	sync := AgentFunc(func(q string, id int) (string, error) {
		if q == "boom" {
			panic("boom!")
		}
		return q, nil
	})
	start := AsyncAgentFunc(func(q string, id int, p Pending) {
		if q == "boom" {
			var m map[string]int
			m["x"] = 1 // a runtime error, not just panic(value)
		}
		p.Complete(q)
	})
	inGoroutine := Async(func(q string, id int) (string, error) {
		if q == "boom" {
			panic(errors.New("boom in a goroutine"))
		}
		return q, nil
	})
	for name, agent := range map[string]Agent{"AgentFunc": sync, "AsyncAgentFunc": start, "Async": inGoroutine} {
		t.Run(name, func(t *testing.T) {
			ex := newExec(t, Config{Agent: agent})
			rs, err := ex.Run(context.Background(), []string{"a", "boom", "b"})
			if err != nil {
				t.Fatal(err)
			}
			if !rs[0].OK() || rs[0].Answer != "a" || !rs[2].OK() || rs[2].Answer != "b" {
				t.Fatalf("%+v", rs)
			}
			if rs[1].Outcome != OutcomeFailed || !strings.Contains(rs[1].Error, "panicked") || !strings.Contains(rs[1].Error, "boom") && !strings.Contains(rs[1].Error, "nil map") {
				t.Fatalf("%+v", rs[1])
			}
		})
	}
}

func TestSixteenGoroutinesShareOneExecutor(t *testing.T) {
	ex := newExec(t, Config{
		Agent:          AgentFunc(func(q string, id int) (string, error) { return fmt.Sprintf("%s#%d", q, id), nil }),
		MaxConcurrency: 32,
	})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			qs := questions(fmt.Sprintf("g%d", g), 300)
			check := func(r Result) error {
				if want := fmt.Sprintf("%s#%d", qs[r.Index], r.Index); !r.OK() || r.Answer != want {
					return fmt.Errorf("goroutine %d: %+v, want %q", g, r, want)
				}
				return nil
			}
			seen := make([]int, len(qs))
			switch g % 3 {
			case 0:
				rs, err := ex.Run(context.Background(), qs)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range rs {
					seen[r.Index]++
					if err := check(r); err != nil {
						errs <- err
						return
					}
				}
			case 1:
				ch, err := ex.Stream(context.Background(), qs)
				if err != nil {
					errs <- err
					return
				}
				for r := range ch {
					seen[r.Index]++
					if err := check(r); err != nil {
						errs <- err
					}
				}
			case 2:
				for r, err := range ex.StreamSeq(context.Background(), qs) {
					if err != nil {
						errs <- err
						return
					}
					seen[r.Index]++
					if err := check(r); err != nil {
						errs <- err
						return
					}
				}
			}
			for i, n := range seen {
				if n != 1 {
					errs <- fmt.Errorf("goroutine %d: question %d came back %d times", g, i, n)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m, err := ex.Metrics()
	if err != nil || m.Total != 16*300 || m.Successful != 16*300 {
		t.Fatalf("metrics %+v %v", m, err)
	}
}

func TestHundredThousandQuestionsExactlyOnce(t *testing.T) {
	const n = 100_000
	ex := newExec(t, Config{Agent: MockAgent{}, MaxConcurrency: 1000})
	qs := questions("q", n)
	ch, err := ex.Stream(context.Background(), qs)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]uint8, n)
	count := 0
	for r := range ch {
		if r.Index < 0 || r.Index >= n || seen[r.Index] != 0 {
			t.Fatalf("index %d out of range or repeated", r.Index)
		}
		seen[r.Index] = 1
		if !r.OK() || r.Answer != mockAnswer(r.Index, qs[r.Index]) {
			t.Fatalf("%+v", r)
		}
		count++
	}
	if count != n {
		t.Fatalf("%d results for %d questions", count, n)
	}
}

func TestErrors(t *testing.T) {
	var e *Error
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("no agent: %v", err)
	}
	_, err := New(Config{Agent: MockAgent{}, MaxConcurrency: 20_000_000})
	if !errors.Is(err, ErrConfig) || !errors.As(err, &e) || e.Op != "pagent_config_set_max_concurrency" || !strings.Contains(e.Message, "max_concurrency") {
		t.Fatalf("huge MaxConcurrency: %#v", err)
	}
	if errors.Is(err, ErrInvalidArg) {
		t.Fatal("ErrConfig matched ErrInvalidArg")
	}
	if _, err := New(Config{Agent: OpenAIAgent{BaseURL: "ftp://example.invalid"}}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("bad URL: %v", err)
	}
	if _, err := New(Config{Agent: MockAgent{FailureRate: 2}}); err == nil {
		t.Fatal("FailureRate 2 accepted")
	}
	if _, err := New(Config{Agent: MockAgent{}, MaxRetries: -1}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("negative: %v", err)
	}

	ex := newExec(t, Config{Agent: MockAgent{}})
	if _, err := ex.Consensus(context.Background(), "q", 0); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("0 voters: %v", err)
	}
	if _, err := ex.MetricsFor("never stored"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := ex.Run(context.Background(), []string{"a\x00b"}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("NUL: %v", err)
	}

	// A blocking call from inside an agent is refused, not a deadlock.
	var inner *Executor
	reentrant := make(chan error, 1)
	inner = newExec(t, Config{Agent: AgentFunc(func(q string, id int) (string, error) {
		if q != "outer" {
			// The nested batch's own call may start before Run frees (cancels) it.
			return "nested", nil
		}
		_, err := inner.Run(context.Background(), []string{"nested"})
		reentrant <- err
		return "outer", nil
	})})
	if rs, err := inner.Run(context.Background(), []string{"outer"}); err != nil || rs[0].Answer != "outer" {
		t.Fatalf("%+v %v", rs, err)
	}
	if err := <-reentrant; !errors.Is(err, ErrReentrant) {
		t.Fatalf("nested Run: %v", err)
	}

	ex.Close()
	if _, err := ex.Run(context.Background(), []string{"q"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := ex.Metrics(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMetrics(t *testing.T) {
	ex := newExec(t, Config{Agent: AgentFunc(func(q string, id int) (string, error) {
		if q == "q 3" {
			return "", errors.New("no")
		}
		return "yes", nil
	})})
	rs, m, err := ex.RunWithMetrics(context.Background(), questions("q", 10))
	if err != nil || len(rs) != 10 {
		t.Fatal(err)
	}
	if m.Total != 10 || m.Successful != 9 || m.Failed != 1 || m.MinDuration > m.AvgDuration || m.AvgDuration > m.MaxDuration {
		t.Fatalf("%+v", m)
	}
	life, err := ex.Metrics()
	if err != nil || life.Total != 10 || life.Failed != 1 {
		t.Fatalf("%+v %v", life, err)
	}
	if err := ex.StoreMetrics("batch 1", m); err != nil {
		t.Fatal(err)
	}
	back, err := ex.MetricsFor("batch 1")
	if err != nil || back != m {
		t.Fatalf("stored %+v, got %+v (%v)", m, back, err)
	}
	js, err := ex.MetricsJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Lifetime map[string]any            `json:"lifetime"`
		ByKey    map[string]map[string]any `json:"by_key"`
	}
	if err := json.Unmarshal(js, &doc); err != nil || doc.Lifetime == nil || doc.ByKey["batch 1"] == nil {
		t.Fatalf("%s: %v", js, err)
	}
}

func TestHandlesReleasedByCloseAndFinalizer(t *testing.T) {
	// Every earlier test closed its executors; their handles may still be on their way
	// out on a library thread.
	eventually(t, "earlier tests' handles to be released", func() bool { return liveHandles.Load() == 0 })
	const base = 0
	fn := AgentFunc(func(q string, id int) (string, error) { return q, nil })
	ex, err := New(Config{Agent: fn})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Run(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if liveHandles.Load() != base+1 {
		t.Fatalf("live handles %d, want %d", liveHandles.Load(), base+1)
	}
	ex.Close()
	eventually(t, "the handle to be released after Close", func() bool { return liveHandles.Load() == base })

	// Forgotten executor: the finalizer frees it, and the library releases the handle.
	func() {
		ex, err := New(Config{Agent: Async(fn)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ex.Run(context.Background(), []string{"y"}); err != nil {
			t.Fatal(err)
		}
	}()
	eventually(t, "the finalizer to free a forgotten executor", func() bool { return liveHandles.Load() == base })
}

func TestVersion(t *testing.T) {
	if v := Version(); !strings.HasPrefix(v, "0.") {
		t.Fatalf("version %q", v)
	}
	if s := ErrConfig.String(); s != "PAGENT_ERR_CONFIG" {
		t.Fatal(s)
	}
}
