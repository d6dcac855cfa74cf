package parallelagents

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startMockLLM starts the project's OpenAI-compatible test server (tools/mock-llm) on
// 127.0.0.1 and stops it at the end of the test. The binary is $PAGENT_MOCK_LLM, else
// target/debug/mock-llm of this source tree (`cargo build -p mock-llm`); without it the
// test is skipped (and fails under CI).
func startMockLLM(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PAGENT_MOCK_LLM")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "mock-llm")
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no mock-llm at %s (cargo build -p mock-llm, or set PAGENT_MOCK_LLM)", bin)
		if os.Getenv("CI") != "" {
			t.Fatal(msg) // under CI a skip is a failure
		}
		t.Skip(msg)
	}
	// --max-seconds bounds it even if this process dies first.
	cmd := exec.Command(bin, "--port", "0", "--max-seconds", "300", "--quiet")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatal("mock-llm printed no port")
		}
		return "http://127.0.0.1:" + p + "/v1"
	case <-time.After(30 * time.Second):
		t.Fatal("mock-llm did not start")
	}
	return ""
}

func TestOpenAIAgentAgainstLocalServer(t *testing.T) {
	url := startMockLLM(t)
	agent := OpenAIAgent{
		BaseURL:        url,
		Model:          "mock-go",
		NoAPIKey:       true,
		UserTemplate:   "Briefly: {question}",
		MaxTokens:      32,
		RequestTimeout: 10 * time.Second,
		Headers:        map[string]string{"X-Test": "go"},
	}
	ex := newExec(t, Config{Agent: agent, MaxConcurrency: 8, MaxRetries: 2,
		RetryBackoffBase: time.Millisecond, RetryBackoffCap: 10 * time.Millisecond})
	qs := []string{
		"What is the capital of Italy?",
		"Who painted the Mona Lisa?",
		"[fail-first=1][status=503] Are you there?", // 503 once, then an answer
		"[status=400] Bad request",                  // fails at once, not retried
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, m, err := ex.RunWithMetrics(ctx, qs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs[:3] {
		if !r.OK() || r.Answer != "mock answer to: Briefly: "+qs[i] || r.PromptTokens == 0 || r.CompletionTokens == 0 {
			t.Fatalf("question %d: %+v", i, r)
		}
	}
	if rs[2].Attempts != 2 {
		t.Fatalf("the retried question took %d attempts", rs[2].Attempts)
	}
	if rs[3].Outcome != OutcomeFailed || rs[3].Attempts != 1 || !strings.Contains(rs[3].Error, "400") {
		t.Fatalf("%+v", rs[3])
	}
	if m.Successful != 3 || m.Failed != 1 || m.PromptTokens == 0 || m.CompletionTokens == 0 {
		t.Fatalf("%+v", m)
	}
}
