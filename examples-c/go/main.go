// A Go host: the agent is a Go function, called by the library through a C trampoline
// (bridge.c) and a runtime/cgo.Handle passed as user_data; the handle is deleted by the
// agent's free_fn once the library no longer uses it.
//
// Build (make test does this):
//
//	CGO_CFLAGS=-I../../include CGO_LDFLAGS="-L../../target/debug -lparallel_agents \
//	    -Wl,-rpath,$PWD/../../target/debug" go build -o ../build/pagent-go .
package main

/*
#cgo pkg-config: parallel_agents
#include <stdint.h>
#include <stdlib.h>
#include "parallel_agents.h"

pagent_status bridge_agent_new(uintptr_t handle, pagent_agent **out);
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime/cgo"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// AnswerFunc is what a Go agent implements. It runs on library threads, possibly many
// at once.
type AnswerFunc func(question string, agentID int) (string, error)

// statusError is a failed library call.
type statusError struct {
	call   string
	status C.pagent_status
	msg    string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.call, C.GoString(C.pagent_status_str(C.uint32_t(e.status))), e.msg)
}

func check(call string, st C.pagent_status) error {
	if st == C.PAGENT_OK {
		return nil
	}
	return &statusError{call, st, C.GoString(C.pagent_last_error())}
}

var released atomic.Int32 // how often an agent's free_fn ran

//export goAnswer
func goAnswer(handle C.uintptr_t, question *C.char, agentID C.size_t, reply *C.pagent_reply) C.int32_t {
	fn := cgo.Handle(handle).Value().(AnswerFunc)
	answer, err := fn(C.GoString(question), int(agentID))
	if err != nil {
		msg := C.CString(err.Error())
		defer C.free(unsafe.Pointer(msg))
		C.pagent_reply_set_error(reply, msg)
		return C.PAGENT_CALLBACK_ERROR
	}
	a := C.CString(answer)
	defer C.free(unsafe.Pointer(a))
	if C.pagent_reply_set_answer(reply, a) != C.PAGENT_OK {
		return C.PAGENT_CALLBACK_ERROR
	}
	return C.PAGENT_CALLBACK_OK
}

//export goReleaseAgent
func goReleaseAgent(handle C.uintptr_t) {
	cgo.Handle(handle).Delete()
	released.Add(1)
}

// newGoAgent wraps fn as a library agent. The caller frees it with pagent_agent_free.
func newGoAgent(fn AnswerFunc) (*C.pagent_agent, error) {
	h := cgo.NewHandle(fn)
	var agent *C.pagent_agent
	if err := check("pagent_agent_callback", C.bridge_agent_new(C.uintptr_t(h), &agent)); err != nil {
		h.Delete() // ownership passes to the library on success only
		return nil, err
	}
	return agent, nil
}

// result is a Go copy of one call's result.
type result struct {
	index    int
	outcome  C.pagent_outcome
	answer   string
	errMsg   string
	duration time.Duration
}

func readResult(r *C.pagent_result) result {
	res := result{
		index:    int(C.pagent_result_question_index(r)),
		outcome:  C.pagent_result_outcome(r),
		duration: time.Duration(C.pagent_result_duration_us(r)) * time.Microsecond,
	}
	if a := C.pagent_result_answer(r); a != nil {
		res.answer = C.GoString(a)
	}
	if e := C.pagent_result_error(r); e != nil {
		res.errMsg = C.GoString(e)
	}
	return res
}

// execute runs questions through exec and copies the results into Go memory.
func execute(exec *C.pagent_executor, questions []string) ([]result, error) {
	cqs := make([]*C.char, len(questions))
	for i, q := range questions {
		cqs[i] = C.CString(q)
		defer C.free(unsafe.Pointer(cqs[i]))
	}
	var rs *C.pagent_results
	if err := check("pagent_execute", C.pagent_execute(exec, &cqs[0], C.size_t(len(cqs)), &rs)); err != nil {
		return nil, err
	}
	defer C.pagent_results_free(rs)
	out := make([]result, int(C.pagent_results_len(rs)))
	for i := range out {
		var r *C.pagent_result
		if err := check("pagent_results_get", C.pagent_results_get(rs, C.size_t(i), &r)); err != nil {
			return nil, err
		}
		out[i] = readResult(r)
	}
	return out, nil
}

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

func run() error {
	fmt.Println("parallel-agents", C.GoString(C.pagent_version()), "from Go")
	agent, err := newGoAgent(goAgent)
	if err != nil {
		return err
	}
	defer func() { C.pagent_agent_free(agent) }() // reads agent at exit: NULL if freed below
	config := C.pagent_config_new()
	defer C.pagent_config_free(config) // the executor copies it
	if err := check("max_concurrency", C.pagent_config_set_max_concurrency(config, 8)); err != nil {
		return err
	}
	if err := check("timeout", C.pagent_config_set_agent_timeout_ms(config, 30000)); err != nil {
		return err
	}
	// Every voter counts (early stop, on by default, could end the round at 3 of 5).
	if err := check("early_stop", C.pagent_config_set_consensus_early_stop(config, false)); err != nil {
		return err
	}
	var exec *C.pagent_executor
	if err := check("pagent_executor_new", C.pagent_executor_new(config, agent, &exec)); err != nil {
		return err
	}
	defer func() { C.pagent_executor_free(exec) }()

	questions := make([]string, 20)
	for i := range questions {
		questions[i] = fmt.Sprintf("question %d", i)
	}
	questions[13] = "fail 13"
	results, err := execute(exec, questions)
	if err != nil {
		return err
	}
	if len(results) != len(questions) {
		return fmt.Errorf("%d results for %d questions", len(results), len(questions))
	}
	for i, r := range results {
		if r.index != i {
			return fmt.Errorf("result %d has index %d", i, r.index)
		}
		if i == 13 {
			if r.outcome != C.PAGENT_OUTCOME_FAILED || !strings.Contains(r.errMsg, "the Go agent refuses") {
				return fmt.Errorf("question 13 should fail with the Go error, got %v %q", r.outcome, r.errMsg)
			}
			fmt.Printf("%-12s -> FAILED: %s\n", questions[i], r.errMsg)
			continue
		}
		want := fmt.Sprintf("Go agent %d: %s", i, strings.ToUpper(questions[i]))
		if r.outcome != C.PAGENT_OUTCOME_OK || r.answer != want {
			return fmt.Errorf("question %d: outcome %v answer %q, want %q (%s)", i, r.outcome, r.answer, want, r.errMsg)
		}
		fmt.Printf("%-12s -> %s (%v)\n", questions[i], r.answer, r.duration)
	}

	q := C.CString("What is 6 x 7?")
	defer C.free(unsafe.Pointer(q))
	var cons *C.pagent_consensus
	if err := check("pagent_run_consensus", C.pagent_run_consensus(exec, q, 5, &cons)); err != nil {
		return err
	}
	answer := C.GoString(C.pagent_consensus_answer(cons))
	conf := float64(C.pagent_consensus_confidence(cons))
	votes := int(C.pagent_consensus_votes(cons))
	counted := int(C.pagent_consensus_counted(cons))
	reached := bool(C.pagent_consensus_reached(cons))
	C.pagent_consensus_free(cons)
	fmt.Printf("consensus: %q confidence %.2f votes %d/%d reached %v\n", answer, conf, votes, counted, reached)
	// Voters 0, 2, 4 say "42": 3 of 5 = 0.6, which meets the default threshold 0.6.
	if answer != "42" || votes != 3 || counted != 5 || !reached || conf < 0.59 || conf > 0.61 {
		return errors.New("unexpected consensus")
	}

	var m C.pagent_metrics
	if err := check("pagent_executor_metrics", C.pagent_executor_metrics(exec, &m)); err != nil {
		return err
	}
	if m.total_count != 25 || m.successful_count != 24 || m.failed_count != 1 {
		return fmt.Errorf("metrics: %d total, %d ok, %d failed", m.total_count, m.successful_count, m.failed_count)
	}
	// Free both now (the deferred frees then get NULL, a no-op) to see free_fn run.
	C.pagent_executor_free(exec)
	exec = nil
	C.pagent_agent_free(agent)
	agent = nil

	// free_fn runs once nothing uses the agent, possibly just after on a library thread.
	for i := 0; i < 200 && released.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := released.Load(); n != 1 {
		return fmt.Errorf("free_fn ran %d times, want 1", n)
	}
	return check("pagent_shutdown", C.pagent_shutdown(1000))
}

func main() {
	// The HTTP agent first: run() ends with pagent_shutdown.
	if err := runOpenAI(); err != nil {
		fmt.Fprintln(os.Stderr, "pagent-go:", err)
		os.Exit(1)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pagent-go:", err)
		os.Exit(1)
	}
	fmt.Println("go: OK")
}
