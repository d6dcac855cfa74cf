package parallelagents

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime/cgo"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Agent answers questions. The implementations are [MockAgent], [OpenAIAgent],
// [AgentFunc], [AsyncAgentFunc] (and [Async]); the interface is closed. An Agent is a
// description: [New] makes the library's agent from it, so one Agent value may serve
// any number of executors.
type Agent interface {
	// newAgent makes the library agent; the caller owns it (pagent_agent_free).
	newAgent() (*C.pagent_agent, error)
}

// MockAgent is the library's built-in mock: it waits Latency (± Jitter) and answers
// "Agent {id} answer for '{question}'", or, with Answers, one of them drawn by Weights.
// The zero value answers at once with seed 0. Same Seed, same behaviour.
type MockAgent struct {
	Latency     time.Duration // base latency of each call
	Jitter      time.Duration // latency is uniform in Latency ± Jitter
	FailureRate float64       // probability in [0, 1] that a call fails (retryably)
	HangRate    float64       // probability that a call never returns (ends at the timeout)
	PanicRate   float64       // probability that a call panics inside the library
	Seed        uint64        // seed of every random draw
	Answers     []string      // if set, each call answers one of these (vote mode)
	Weights     []float64     // weights of Answers (nil: equal); same length as Answers
}

func (m MockAgent) newAgent() (*C.pagent_agent, error) {
	const op = "MockAgent"
	if m.Latency < 0 || m.Jitter < 0 {
		return nil, invalid(op, "negative Latency or Jitter")
	}
	if m.Weights != nil && len(m.Weights) != len(m.Answers) {
		return nil, invalid(op, fmt.Sprintf("%d Weights for %d Answers", len(m.Weights), len(m.Answers)))
	}
	var o C.pagent_mock_options
	C.pagent_mock_options_init(&o)
	o.latency_us = C.uint64_t(m.Latency / time.Microsecond)
	o.jitter_us = C.uint64_t(m.Jitter / time.Microsecond)
	o.failure_rate = C.double(m.FailureRate)
	o.hang_rate = C.double(m.HangRate)
	o.panic_rate = C.double(m.PanicRate)
	o.seed = C.uint64_t(m.Seed)
	if n := len(m.Answers); n > 0 {
		// The options struct is Go memory, so the arrays it points to must be C memory.
		answers := unsafe.Slice((**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil))))), n)
		defer func() {
			for _, a := range answers {
				C.free(unsafe.Pointer(a))
			}
			C.free(unsafe.Pointer(&answers[0]))
		}()
		for i, a := range m.Answers {
			if strings.IndexByte(a, 0) >= 0 {
				return nil, invalid(op, fmt.Sprintf("Answers[%d] contains a NUL byte", i))
			}
			answers[i] = C.CString(a)
		}
		o.vote_answers = &answers[0]
		o.n_vote_answers = C.size_t(n)
		if m.Weights != nil {
			w := unsafe.Slice((*C.double)(C.malloc(C.size_t(n)*C.size_t(unsafe.Sizeof(C.double(0))))), n)
			defer C.free(unsafe.Pointer(&w[0]))
			for i, x := range m.Weights {
				w[i] = C.double(x)
			}
			o.vote_weights = &w[0]
		}
	}
	var agent *C.pagent_agent
	err := call("pagent_agent_mock", func() C.pagent_status { return C.pagent_agent_mock(&o, &agent) })
	return agent, err
}

// OpenAIAgent asks an OpenAI-compatible chat-completions endpoint; the library makes the
// HTTP requests (no Go code runs per call). Zero fields keep the library's defaults.
// The API key is read from the environment variable named by APIKeyEnv when [New] runs,
// is sent only in the Authorization header, and never appears in results or errors.
type OpenAIAgent struct {
	BaseURL         string            // e.g. "http://127.0.0.1:8080/v1"; "" = https://api.openai.com/v1
	Model           string            // "" = gpt-4o-mini
	APIKeyEnv       string            // variable holding the key; "" = OPENAI_API_KEY
	NoAPIKey        bool              // send no key at all (local servers)
	SystemPrompt    string            // sent before each question; "" = none
	UserTemplate    string            // must contain {question}; "" = "{question}"
	Temperature     float64           // in [0, 2]; 0 is the default
	MaxTokens       int               // completion tokens per call; 0 = 256
	Headers         map[string]string // extra request headers (values are treated as secrets)
	RequestTimeout  time.Duration     // per HTTP request; 0 = 60 s
	TokensPerMinute int               // token budget of the agent; 0 = none
}

func (o OpenAIAgent) newAgent() (*C.pagent_agent, error) {
	opts := C.pagent_openai_options_new()
	defer C.pagent_openai_options_free(opts)
	setStr := func(op, v string, f func(*C.char) C.pagent_status) error {
		if strings.IndexByte(v, 0) >= 0 {
			return invalid(op, "value contains a NUL byte")
		}
		s := C.CString(v)
		defer C.free(unsafe.Pointer(s))
		return call(op, func() C.pagent_status { return f(s) })
	}
	var steps []func() error
	if o.BaseURL != "" {
		steps = append(steps, func() error {
			return setStr("pagent_openai_options_set_base_url", o.BaseURL, func(s *C.char) C.pagent_status {
				return C.pagent_openai_options_set_base_url(opts, s)
			})
		})
	}
	if o.Model != "" {
		steps = append(steps, func() error {
			return setStr("pagent_openai_options_set_model", o.Model, func(s *C.char) C.pagent_status {
				return C.pagent_openai_options_set_model(opts, s)
			})
		})
	}
	if o.APIKeyEnv != "" || o.NoAPIKey {
		env := o.APIKeyEnv
		if o.NoAPIKey {
			env = ""
		}
		steps = append(steps, func() error {
			return setStr("pagent_openai_options_set_api_key_env", env, func(s *C.char) C.pagent_status {
				return C.pagent_openai_options_set_api_key_env(opts, s)
			})
		})
	}
	if o.SystemPrompt != "" {
		steps = append(steps, func() error {
			return setStr("pagent_openai_options_set_system_prompt", o.SystemPrompt, func(s *C.char) C.pagent_status {
				return C.pagent_openai_options_set_system_prompt(opts, s)
			})
		})
	}
	if o.UserTemplate != "" {
		steps = append(steps, func() error {
			return setStr("pagent_openai_options_set_user_template", o.UserTemplate, func(s *C.char) C.pagent_status {
				return C.pagent_openai_options_set_user_template(opts, s)
			})
		})
	}
	steps = append(steps, func() error {
		return call("pagent_openai_options_set_temperature", func() C.pagent_status {
			return C.pagent_openai_options_set_temperature(opts, C.double(o.Temperature))
		})
	})
	if o.MaxTokens != 0 {
		steps = append(steps, func() error {
			if o.MaxTokens < 0 || uint64(o.MaxTokens) > math.MaxUint32 {
				return invalid("OpenAIAgent", "MaxTokens out of range")
			}
			return call("pagent_openai_options_set_max_tokens", func() C.pagent_status {
				return C.pagent_openai_options_set_max_tokens(opts, C.uint32_t(o.MaxTokens))
			})
		})
	}
	names := make([]string, 0, len(o.Headers))
	for k := range o.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		k, v := k, o.Headers[k]
		steps = append(steps, func() error {
			if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
				return invalid("pagent_openai_options_add_header", "header contains a NUL byte")
			}
			name, value := C.CString(k), C.CString(v)
			defer C.free(unsafe.Pointer(name))
			defer C.free(unsafe.Pointer(value))
			return call("pagent_openai_options_add_header", func() C.pagent_status {
				return C.pagent_openai_options_add_header(opts, name, value)
			})
		})
	}
	if o.RequestTimeout != 0 {
		steps = append(steps, func() error {
			ms, err := millis("OpenAIAgent.RequestTimeout", o.RequestTimeout)
			if err != nil {
				return err
			}
			return call("pagent_openai_options_set_request_timeout_ms", func() C.pagent_status {
				return C.pagent_openai_options_set_request_timeout_ms(opts, ms)
			})
		})
	}
	if o.TokensPerMinute != 0 {
		steps = append(steps, func() error {
			if o.TokensPerMinute < 0 {
				return invalid("OpenAIAgent", "negative TokensPerMinute")
			}
			return call("pagent_openai_options_set_tokens_per_minute", func() C.pagent_status {
				return C.pagent_openai_options_set_tokens_per_minute(opts, C.uint64_t(o.TokensPerMinute))
			})
		})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	var agent *C.pagent_agent
	err := call("pagent_agent_openai", func() C.pagent_status { return C.pagent_agent_openai(opts, &agent) })
	return agent, err
}

// AgentFunc is a Go function as a blocking agent. The library calls it on its own
// threads, possibly many at once (up to the executor's MaxConcurrency), so it must be
// safe for concurrent use. agentID is the question's index (the voter's index in a
// consensus round, the member's in a pool). A returned error fails the call (wrap it
// with [Retryable] to let the executor retry); a panic is recovered and fails the call
// too. A call that runs past the executor's AgentTimeout is reported timed out at once,
// while the function runs on to its return and its answer is dropped. Blocking library
// calls made from inside it (Run, Consensus) fail with [ErrReentrant]; Stream works.
//
// The function is kept alive by a runtime/cgo.Handle that the library releases (and this
// package deletes) once no executor or call uses it.
type AgentFunc func(question string, agentID int) (string, error)

func (f AgentFunc) newAgent() (*C.pagent_agent, error) {
	if f == nil {
		return nil, invalid("AgentFunc", "nil function")
	}
	return newCallbackAgent("pagent_agent_callback", f, func(h C.uintptr_t, out **C.pagent_agent) C.pagent_status {
		return C.pago_agent_func(h, out)
	})
}

// AsyncAgentFunc is a completion-based agent: the library calls it to start a call and
// it must return at once (it runs on a library worker thread that other calls share);
// the answer is given later, from any goroutine, with [Pending.Complete] or
// [Pending.Fail]. Thousands of calls can be in flight without a thread each. A call
// whose Pending is never completed ends at the executor's AgentTimeout. A panic in the
// function itself is recovered and fails the call (a panic in a goroutine it starts is
// that goroutine's, as always in Go). See [Async] for the common case.
type AsyncAgentFunc func(question string, agentID int, p Pending)

func (f AsyncAgentFunc) newAgent() (*C.pagent_agent, error) {
	if f == nil {
		return nil, invalid("AsyncAgentFunc", "nil function")
	}
	return newCallbackAgent("pagent_agent_callback_async", f, func(h C.uintptr_t, out **C.pagent_agent) C.pagent_status {
		return C.pago_agent_async(h, out)
	})
}

// Async runs fn as a completion-based agent: each call runs in its own goroutine
// instead of on a library thread, so a slow fn (say, one waiting on the network) holds
// no OS thread. Errors, Retryable errors and panics in fn fail the call as for
// [AgentFunc].
func Async(fn AgentFunc) AsyncAgentFunc {
	return func(question string, agentID int, p Pending) {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					_ = p.Fail(panicError(r))
				}
			}()
			answer, err := fn(question, agentID)
			if err != nil {
				_ = p.Fail(err)
				return
			}
			_ = p.Complete(answer)
		}()
	}
}

// Pending is one outstanding call of an [AsyncAgentFunc]: an opaque token, not memory,
// so it may be copied, kept, and completed from any goroutine. Completing it a second
// time, or after its call timed out or was cancelled, is harmless and returns
// [ErrStale].
type Pending struct {
	token uintptr
}

// Complete answers the call.
func (p Pending) Complete(answer string) error {
	if strings.IndexByte(answer, 0) >= 0 {
		_ = p.Fail(errors.New("answer contains a NUL byte"))
		return invalid("Pending.Complete", "answer contains a NUL byte")
	}
	s := C.CString(answer)
	defer C.free(unsafe.Pointer(s))
	return call("pagent_pending_complete", func() C.pagent_status {
		return C.pago_pending_complete(C.uintptr_t(p.token), s)
	})
}

// Fail fails the call with err's message; it may be retried if err is [Retryable].
func (p Pending) Fail(err error) error {
	msg := "failed"
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\x00", "\\0")
	}
	s := C.CString(msg)
	defer C.free(unsafe.Pointer(s))
	retry := C.bool(IsRetryable(err))
	return call("pagent_pending_fail", func() C.pagent_status {
		return C.pago_pending_fail(C.uintptr_t(p.token), s, retry)
	})
}

// retryable marks an agent error as worth retrying.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable marks err, returned by an agent function, as a failure that may succeed if
// retried (a rate limit, a dropped connection): the executor retries it up to
// Config.MaxRetries times. Other errors fail the call at once. Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// IsRetryable reports whether err (or an error it wraps) was marked with [Retryable].
func IsRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

// panicError describes a recovered panic as a failure.
func panicError(r any) error { return fmt.Errorf("Go agent panicked: %v", r) }

// liveHandles counts the cgo handles of agent functions not yet released (for tests).
var liveHandles atomic.Int64

// newCallbackAgent hands fn to the library behind a cgo.Handle. Ownership of the handle
// passes to the library on success (it calls pagoRelease once, which deletes it); on
// failure it is deleted here.
func newCallbackAgent(op string, fn any, mk func(C.uintptr_t, **C.pagent_agent) C.pagent_status) (*C.pagent_agent, error) {
	h := cgo.NewHandle(fn)
	liveHandles.Add(1)
	var agent *C.pagent_agent
	if err := call(op, func() C.pagent_status { return mk(C.uintptr_t(h), &agent) }); err != nil {
		h.Delete()
		liveHandles.Add(-1)
		return nil, err
	}
	return agent, nil
}
