package parallelagents_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	parallelagents "example.invalid/parallel-agents/bindings/go"
)

func ExampleExecutor_Run() {
	ex, err := parallelagents.New(parallelagents.Config{
		Agent:          parallelagents.MockAgent{}, // answers at once, from a template
		MaxConcurrency: 8,
	})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	results, err := ex.Run(context.Background(), []string{"What is 2 + 2?", "Who wrote Hamlet?"})
	if err != nil {
		panic(err)
	}
	for _, r := range results { // in question order
		fmt.Println(r.Index, r.Outcome, r.Answer)
	}
	// Output:
	// 0 ok Agent 0 answer for 'What is 2 + 2?'
	// 1 ok Agent 1 answer for 'Who wrote Hamlet?'
}

func ExampleExecutor_Stream() {
	ex, err := parallelagents.New(parallelagents.Config{Agent: parallelagents.MockAgent{}})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	ch, err := ex.Stream(context.Background(), []string{"a", "b", "c"})
	if err != nil {
		panic(err)
	}
	var got []string
	for r := range ch { // completion order; closed after the last one
		got = append(got, r.Answer)
	}
	sort.Strings(got)
	fmt.Println(strings.Join(got, "\n"))
	// Output:
	// Agent 0 answer for 'a'
	// Agent 1 answer for 'b'
	// Agent 2 answer for 'c'
}

func ExampleExecutor_StreamSeq() {
	ex, err := parallelagents.New(parallelagents.Config{Agent: parallelagents.MockAgent{}})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	answered := 0
	for r, err := range ex.StreamSeq(context.Background(), []string{"x", "y", "z"}) {
		if err != nil {
			panic(err)
		}
		if r.OK() {
			answered++
		}
	}
	fmt.Println(answered, "answered")
	// Output: 3 answered
}

func ExampleExecutor_Consensus() {
	// Voters agree in substance, not in form; answers are normalised before the vote.
	vote := parallelagents.AgentFunc(func(question string, agentID int) (string, error) {
		if agentID%2 == 0 {
			return "Paris", nil
		}
		return "paris.", nil
	})
	ex, err := parallelagents.New(parallelagents.Config{Agent: vote, NoEarlyStop: true})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	c, err := ex.Consensus(context.Background(), "What is the capital of France?", 5)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %d of %d votes, reached: %v\n", c.Answer, c.Votes, c.Counted, c.Reached)
	// Output: Paris: 5 of 5 votes, reached: true
}

func ExampleAgentFunc() {
	shout := parallelagents.AgentFunc(func(question string, agentID int) (string, error) {
		if question == "" {
			return "", errors.New("empty question")
		}
		return strings.ToUpper(question), nil
	})
	ex, err := parallelagents.New(parallelagents.Config{Agent: shout})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	results, _ := ex.Run(context.Background(), []string{"hello", ""})
	for _, r := range results {
		if r.OK() {
			fmt.Printf("%s %q\n", r.Outcome, r.Answer)
		} else {
			fmt.Printf("%s: %s\n", r.Outcome, r.Error)
		}
	}
	// Output:
	// ok "HELLO"
	// failed: empty question
}

func ExampleAsync() {
	// Each call runs in its own goroutine: no library thread waits for it.
	agent := parallelagents.Async(func(question string, agentID int) (string, error) {
		return "async " + question, nil
	})
	ex, err := parallelagents.New(parallelagents.Config{Agent: agent, MaxConcurrency: 1000})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	results, _ := ex.Run(context.Background(), []string{"one", "two"})
	fmt.Println(results[0].Answer, "/", results[1].Answer)
	// Output: async one / async two
}

func ExampleRetryable() {
	calls := 0 // MaxConcurrency 1: one call at a time
	flaky := parallelagents.AgentFunc(func(question string, agentID int) (string, error) {
		calls++
		if calls == 1 {
			return "", parallelagents.Retryable(errors.New("rate limited"))
		}
		return "done", nil
	})
	ex, err := parallelagents.New(parallelagents.Config{Agent: flaky, MaxConcurrency: 1, MaxRetries: 3})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	results, _ := ex.Run(context.Background(), []string{"q"})
	fmt.Println(results[0].Answer, "after", results[0].Attempts, "attempts")
	// Output: done after 2 attempts
}

func ExampleError() {
	_, err := parallelagents.New(parallelagents.Config{
		Agent:          parallelagents.MockAgent{},
		MaxConcurrency: 100_000_000, // over the library's limit
	})
	fmt.Println(errors.Is(err, parallelagents.ErrConfig))
	var e *parallelagents.Error
	if errors.As(err, &e) {
		fmt.Println(e.Op, e.Status.String())
	}
	// Output:
	// true
	// pagent_config_set_max_concurrency PAGENT_ERR_CONFIG
}

func ExampleExecutor_Metrics() {
	ex, err := parallelagents.New(parallelagents.Config{Agent: parallelagents.MockAgent{FailureRate: 1}})
	if err != nil {
		panic(err)
	}
	defer ex.Close()

	if _, err := ex.Run(context.Background(), []string{"a", "b", "c"}); err != nil {
		panic(err)
	}
	m, err := ex.Metrics()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d calls: %d ok, %d failed\n", m.Total, m.Successful, m.Failed)
	// Output: 3 calls: 0 ok, 3 failed
}

// Questions with ids and a journal: a second executor on the same journal (a rerun of
// the job after a crash, say) replays what is stored and runs only the new question.
func ExampleExecutor_RunIDs() {
	dir, err := os.MkdirTemp("", "pagent-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	journal := filepath.Join(dir, "job.journal")
	agent := parallelagents.AgentFunc(func(q string, _ int) (string, error) {
		return strings.ToUpper(q), nil
	})
	run := func(ids, questions []string) {
		ex, err := parallelagents.New(parallelagents.Config{Agent: agent, Journal: journal})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer ex.Close() // releases the journal for the next executor
		rs, err := ex.RunIDs(context.Background(), ids, questions)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, r := range rs {
			fmt.Printf("%s: %s (replayed: %v)\n", r.ID, r.Answer, r.Replayed)
		}
	}
	run([]string{"doc-1", "doc-2"}, []string{"alpha", "beta"})
	run([]string{"doc-1", "doc-2", "doc-3"}, []string{"alpha", "beta", "gamma"})
	// Output:
	// doc-1: ALPHA (replayed: false)
	// doc-2: BETA (replayed: false)
	// doc-1: ALPHA (replayed: true)
	// doc-2: BETA (replayed: true)
	// doc-3: GAMMA (replayed: false)
}

// One start budget shared by two executors; a Redis one (NewRedisRateLimiter) is used
// the same way and is shared by every process on the same URL and key.
func ExampleNewRateLimiter() {
	lim, err := parallelagents.NewRateLimiter(600, 1) // 10 starts per second in all
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := parallelagents.Config{Agent: parallelagents.MockAgent{}, RateLimiter: lim}
	a, err := parallelagents.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := parallelagents.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	lim.Close() // the executors keep their own references
	start := time.Now()
	ra, _ := a.Run(context.Background(), []string{"q1", "q2", "q3"})
	rb, _ := b.Run(context.Background(), []string{"q4", "q5", "q6"})
	fmt.Println(len(ra)+len(rb), "answers; took at least 0.4 s:", time.Since(start) >= 400*time.Millisecond)
	// Output: 6 answers; took at least 0.4 s: true
}
