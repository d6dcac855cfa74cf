// A Go host of libparallel_agents through the Go module (bindings/go): the agent is a Go
// function, then the library's OpenAI-compatible HTTP agent against the local test
// server. No cgo here: the module owns the C rules.
//
// Build (make test does this; the module finds the library with pkg-config):
//
//	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib" \
//	    go build -o ../build/pagent-go .
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	pa "example.invalid/parallel-agents/bindings/go"
)

func goAgent(question string, agentID int) (string, error) {
	switch {
	case question == "What is 6 x 7?":
		// Voters disagree in form but mostly agree in substance.
		if agentID%2 == 0 {
			return "42", nil
		}
		return "Forty-two", nil
	case strings.HasPrefix(question, "fail"):
		return "", errors.New("the Go agent refuses: " + question)
	default:
		return fmt.Sprintf("Go agent %d: %s", agentID, strings.ToUpper(question)), nil
	}
}

func run(ctx context.Context) error {
	fmt.Println("parallel-agents", pa.Version(), "from Go")
	// Every voter counts (early stop, on by default, could end the round at 3 of 5).
	ex, err := pa.New(pa.Config{
		Agent:          pa.AgentFunc(goAgent),
		MaxConcurrency: 8,
		AgentTimeout:   30 * time.Second,
		NoEarlyStop:    true,
	})
	if err != nil {
		return err
	}
	defer ex.Close()

	questions := make([]string, 20)
	for i := range questions {
		questions[i] = fmt.Sprintf("question %d", i)
	}
	questions[13] = "fail 13"
	results, err := ex.Run(ctx, questions)
	if err != nil {
		return err
	}
	for i, r := range results {
		if i == 13 {
			if r.Outcome != pa.OutcomeFailed || !strings.Contains(r.Error, "the Go agent refuses") {
				return fmt.Errorf("question 13 should fail with the Go error, got %v %q", r.Outcome, r.Error)
			}
			fmt.Printf("%-12s -> FAILED: %s\n", questions[i], r.Error)
			continue
		}
		want := fmt.Sprintf("Go agent %d: %s", i, strings.ToUpper(questions[i]))
		if r.Index != i || !r.OK() || r.Answer != want {
			return fmt.Errorf("question %d: %+v, want %q", i, r, want)
		}
		fmt.Printf("%-12s -> %s (%v)\n", questions[i], r.Answer, r.Duration)
	}

	// Streaming: results in completion order, each question once.
	ch, err := ex.Stream(ctx, questions[:5])
	if err != nil {
		return err
	}
	n := 0
	for r := range ch {
		if !r.OK() {
			return fmt.Errorf("stream: %+v", r)
		}
		n++
	}
	fmt.Printf("stream: %d results\n", n)

	c, err := ex.Consensus(ctx, "What is 6 x 7?", 5)
	if err != nil {
		return err
	}
	fmt.Printf("consensus: %q confidence %.2f votes %d/%d reached %v\n", c.Answer, c.Confidence, c.Votes, c.Counted, c.Reached)
	// Voters 0, 2, 4 say "42": 3 of 5 = 0.6, which meets the default threshold 0.6.
	if c.Answer != "42" || c.Votes != 3 || c.Counted != 5 || !c.Reached {
		return errors.New("unexpected consensus")
	}

	m, err := ex.Metrics()
	if err != nil {
		return err
	}
	if m.Total != 30 || m.Successful != 29 || m.Failed != 1 {
		return fmt.Errorf("metrics: %+v", m)
	}
	fmt.Printf("metrics: %d calls, %d ok, %d failed, mean %v\n", m.Total, m.Successful, m.Failed, m.AvgDuration)
	return nil
}

// runOpenAI asks a few questions through the library's HTTP agent. Uses OPENAI_BASE_URL
// / OPENAI_API_KEY when set, else the local test server in PAGENT_TEST_LLM_URL (make test
// starts it); with neither, or a library built without the openai feature, it skips.
func runOpenAI(ctx context.Context) error {
	baseURL, model := os.Getenv("OPENAI_BASE_URL"), os.Getenv("OPENAI_MODEL")
	agent := pa.OpenAIAgent{BaseURL: baseURL, Model: model, UserTemplate: "Briefly: {question}", MaxTokens: 32}
	real := baseURL != ""
	if !real {
		agent.BaseURL, agent.Model, agent.NoAPIKey = os.Getenv("PAGENT_TEST_LLM_URL"), "mock-go", true
	}
	if agent.BaseURL == "" {
		fmt.Println("openai (Go): SKIP (set OPENAI_BASE_URL, or run through make test)")
		return nil
	}
	ex, err := pa.New(pa.Config{Agent: agent, MaxConcurrency: 16, MaxRetries: 2})
	var e *pa.Error
	if errors.As(err, &e) && strings.Contains(e.Message, "without openai") {
		fmt.Println("openai (Go): SKIP:", e.Message)
		return nil
	}
	if err != nil {
		return err
	}
	defer ex.Close()
	questions := []string{"What is the capital of Italy?", "What is 3 x 3?", "Who painted the Mona Lisa?"}
	if !real {
		// The test server answers 503 once, then succeeds: the retry is invisible here.
		questions = append(questions, "[fail-first=1][status=503] Are you there?")
	}
	results, m, err := ex.RunWithMetrics(ctx, questions)
	if err != nil {
		return err
	}
	for i, r := range results {
		if !r.OK() {
			return fmt.Errorf("openai question %d failed: %s", i, r.Error)
		}
		fmt.Printf("openai (Go): %-40s -> %s (%v)\n", questions[i], r.Answer, r.Duration)
		if !real && r.Answer != "mock answer to: Briefly: "+questions[i] {
			return fmt.Errorf("openai question %d: unexpected answer %q", i, r.Answer)
		}
	}
	fmt.Printf("openai (Go): %d answers, %d prompt + %d completion tokens\n", len(results), m.PromptTokens, m.CompletionTokens)
	if m.Successful != len(questions) || m.PromptTokens == 0 || m.CompletionTokens == 0 {
		return fmt.Errorf("openai metrics: %+v", m)
	}
	return nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := runOpenAI(ctx)
	if err == nil {
		err = run(ctx)
	}
	if err == nil {
		err = pa.Shutdown(time.Second) // explicit, once, before exit
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pagent-go:", err)
		os.Exit(1)
	}
	fmt.Println("go: OK")
}
