package parallelagents

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Executor runs questions through an agent (or a pool) with the settings of its
// [Config]. It is safe for concurrent use: any number of goroutines may call Run,
// Stream and Consensus at once, sharing its MaxConcurrency. Close it when done.
type Executor struct {
	mu  sync.RWMutex       // held shared while a library call uses ptr; Close takes it
	ptr *C.pagent_executor // nil once closed
}

// New makes an executor from cfg. The library copies the settings and makes its own
// agent(s) from cfg.Agent or cfg.Pool. The caller must Close the executor; a finalizer
// frees a forgotten one, but only as a safety net.
func New(cfg Config) (*Executor, error) {
	var agents []Agent
	switch {
	case cfg.Agent != nil && len(cfg.Pool) > 0:
		return nil, invalid("New", "set Config.Agent or Config.Pool, not both")
	case cfg.Agent != nil:
		agents = []Agent{cfg.Agent}
	case len(cfg.Pool) > 0:
		agents = cfg.Pool
	default:
		return nil, invalid("New", "Config.Agent is nil")
	}
	ccfg, err := cfg.newConfig()
	if err != nil {
		return nil, err
	}
	defer C.pagent_config_free(ccfg) // the executor keeps a copy
	cagents := make([]*C.pagent_agent, 0, len(agents))
	defer func() {
		for _, a := range cagents {
			C.pagent_agent_free(a) // the executor keeps its own references
		}
	}()
	for i, a := range agents {
		if a == nil {
			return nil, invalid("New", fmt.Sprintf("Config.Pool[%d] is nil", i))
		}
		ca, err := a.newAgent()
		if err != nil {
			return nil, err
		}
		cagents = append(cagents, ca)
	}
	var ex *C.pagent_executor
	if cfg.Agent != nil {
		err = call("pagent_executor_new", func() C.pagent_status {
			return C.pagent_executor_new(ccfg, cagents[0], &ex)
		})
	} else {
		err = call("pagent_executor_new_pool", func() C.pagent_status {
			return C.pagent_executor_new_pool(ccfg, &cagents[0], C.size_t(len(cagents)), &ex)
		})
	}
	if err != nil {
		return nil, err
	}
	e := &Executor{ptr: ex}
	runtime.SetFinalizer(e, (*Executor).Close)
	return e, nil
}

// Close frees the executor. It waits for Consensus calls in progress; batches already
// started by Run and Stream run on and still deliver every result. Later calls return
// [ErrClosed]. Closing twice is harmless.
func (e *Executor) Close() error {
	e.mu.Lock()
	ptr := e.ptr
	e.ptr = nil
	e.mu.Unlock()
	if ptr != nil {
		C.pagent_executor_free(ptr)
		runtime.SetFinalizer(e, nil)
	}
	return nil
}

// acquire returns the executor's handle, usable until release is called.
func (e *Executor) acquire() (ptr *C.pagent_executor, release func(), err error) {
	e.mu.RLock()
	if e.ptr == nil {
		e.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	return e.ptr, e.mu.RUnlock, nil
}

// Run answers questions and returns one result per question, in question order.
// Cancelling ctx (or its deadline) cancels the calls still running or not started: they
// come back with [OutcomeCancelled], every result is still returned, and the error is
// ctx.Err(). Agent failures are results, not errors.
func (e *Executor) Run(ctx context.Context, questions []string) ([]Result, error) {
	rs, _, err := e.RunWithMetrics(ctx, questions)
	return rs, err
}

// RunWithMetrics is [Executor.Run] that also returns the batch's metrics.
func (e *Executor) RunWithMetrics(ctx context.Context, questions []string) ([]Result, Metrics, error) {
	return e.run(ctx, "Run", nil, questions)
}

// RunIDs is [Executor.Run] with an id for each question: ids[i] names questions[i]
// (len(ids) must equal len(questions)), and each result carries its question's id in
// Result.ID. With a journal (Config.Journal) results are stored and replayed by id, so
// a rerun of the same ids after a crash calls the agent only for the ids not yet done.
// An id given twice is an error with [ErrDuplicateID] (the message names it), and
// nothing runs.
func (e *Executor) RunIDs(ctx context.Context, ids, questions []string) ([]Result, error) {
	rs, _, err := e.RunIDsWithMetrics(ctx, ids, questions)
	return rs, err
}

// RunIDsWithMetrics is [Executor.RunIDs] that also returns the batch's metrics.
func (e *Executor) RunIDsWithMetrics(ctx context.Context, ids, questions []string) ([]Result, Metrics, error) {
	if ids == nil {
		ids = []string{}
	}
	return e.run(ctx, "RunIDs", ids, questions)
}

// run submits a batch (with ids unless ids is nil) and waits for all of it.
func (e *Executor) run(ctx context.Context, op string, ids, questions []string) ([]Result, Metrics, error) {
	if err := checkIDs(op, ids, questions); err != nil {
		return nil, Metrics{}, err
	}
	if len(questions) == 0 {
		return []Result{}, Metrics{}, nil
	}
	b, err := e.submit(op, ids, questions)
	if err != nil {
		return nil, Metrics{}, err
	}
	defer b.free()
	stop := b.watch(ctx)
	rs, m, err := b.wait()
	stop()
	if err != nil {
		return nil, Metrics{}, err
	}
	if b.wasCancelled() && ctx.Err() != nil {
		return rs, m, ctx.Err()
	}
	return rs, m, nil
}

// checkIDs checks that ids (if not nil) pairs up with questions.
func checkIDs(op string, ids, questions []string) error {
	if ids != nil && len(ids) != len(questions) {
		return invalid(op, fmt.Sprintf("%d ids for %d questions", len(ids), len(questions)))
	}
	return nil
}

// Stream answers questions and delivers their results in completion order on the
// returned channel, which is closed once every question has come back exactly once.
// Cancelling ctx cancels the calls still running or not started; they arrive as
// [OutcomeCancelled] results, so read the channel to its end (an abandoned channel
// keeps its goroutine and batch alive).
func (e *Executor) Stream(ctx context.Context, questions []string) (<-chan Result, error) {
	return e.stream(ctx, "Stream", nil, questions)
}

// StreamIDs is [Executor.Stream] with an id for each question, as for [Executor.RunIDs]:
// each result carries its question's id (Result.ID), and a journal stores and replays
// results by id. An id given twice is an error with [ErrDuplicateID].
func (e *Executor) StreamIDs(ctx context.Context, ids, questions []string) (<-chan Result, error) {
	if ids == nil {
		ids = []string{}
	}
	return e.stream(ctx, "StreamIDs", ids, questions)
}

func (e *Executor) stream(ctx context.Context, op string, ids, questions []string) (<-chan Result, error) {
	if err := checkIDs(op, ids, questions); err != nil {
		return nil, err
	}
	ch := make(chan Result, min(len(questions), 64))
	if len(questions) == 0 {
		close(ch)
		return ch, nil
	}
	b, err := e.submit(op, ids, questions)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(ch)
		defer b.free()
		stop := b.watch(ctx)
		defer stop()
		b.deliver(func(r Result) bool {
			ch <- r
			return true
		})
	}()
	return ch, nil
}

// StreamSeq is [Executor.Stream] as an iterator: results in completion order, each
// question exactly once. Breaking out of the loop cancels the calls still running. A
// failure to start the batch is yielded once as the error.
//
//	for r, err := range ex.StreamSeq(ctx, questions) { ... }
func (e *Executor) StreamSeq(ctx context.Context, questions []string) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		if len(questions) == 0 {
			return
		}
		b, err := e.submit("StreamSeq", nil, questions)
		if err != nil {
			yield(Result{}, err)
			return
		}
		defer b.free()
		stop := b.watch(ctx)
		defer stop()
		b.deliver(func(r Result) bool { return yield(r, nil) })
	}
}

// Consensus holds a consensus round's verdict.
type Consensus struct {
	Answer       string   // the winning answer as its first voter wrote it ("" if none counted)
	Confidence   float64  // winning votes / answers counted, in [0, 1]
	Votes        int      // votes for the winner
	Counted      int      // successful, non-empty answers
	Reached      bool     // Confidence reached Config.ConsensusThreshold
	EarlyStopped bool     // the round cancelled voters that could not change the verdict
	Results      []Result // every voter's call, in voter order
	Metrics      Metrics  // the round's metrics
}

// Consensus asks n agents (1 to 100,000) the same question and votes over their
// normalised answers (trimmed, case-folded, whitespace collapsed, trailing punctuation
// stripped). The round's metrics are also kept under the question ([Executor.MetricsFor]).
//
// ctx: if it ends first, Consensus returns ctx.Err() at once. The C ABI has no way to
// cancel one round, so its voters then run on in the background (each bounded by
// AgentTimeout) and their results are dropped.
func (e *Executor) Consensus(ctx context.Context, question string, n int) (*Consensus, error) {
	if n < 0 {
		return nil, invalid("Consensus", fmt.Sprintf("n is negative (%d)", n))
	}
	if strings.IndexByte(question, 0) >= 0 {
		return nil, invalid("Consensus", "the question contains a NUL byte")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		return e.consensus(question, n)
	}
	type outcome struct {
		c   *Consensus
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		c, err := e.consensus(question, n)
		done <- outcome{c, err}
	}()
	select {
	case o := <-done:
		return o.c, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Executor) consensus(question string, n int) (*Consensus, error) {
	ptr, release, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	q := C.CString(question)
	defer C.free(unsafe.Pointer(q))
	var c *C.pagent_consensus
	if err := call("pagent_run_consensus", func() C.pagent_status {
		return C.pagent_run_consensus(ptr, q, C.size_t(n), &c)
	}); err != nil {
		return nil, err
	}
	defer C.pagent_consensus_free(c)
	out := &Consensus{
		Confidence:   float64(C.pagent_consensus_confidence(c)),
		Votes:        int(C.pagent_consensus_votes(c)),
		Counted:      int(C.pagent_consensus_counted(c)),
		Reached:      bool(C.pagent_consensus_reached(c)),
		EarlyStopped: bool(C.pagent_consensus_early_stopped(c)),
	}
	if a := C.pagent_consensus_answer(c); a != nil {
		out.Answer = C.GoString(a)
	}
	rs := C.pagent_consensus_results(c) // borrowed from c
	if out.Results, out.Metrics, err = readResults(rs, func(int) string { return question }); err != nil {
		return nil, err
	}
	return out, nil
}

// Metrics returns the figures over every call this executor has finished.
func (e *Executor) Metrics() (Metrics, error) {
	ptr, release, err := e.acquire()
	if err != nil {
		return Metrics{}, err
	}
	defer release()
	var m C.pagent_metrics
	err = call("pagent_executor_metrics", func() C.pagent_status { return C.pagent_executor_metrics(ptr, &m) })
	return goMetrics(&m), err
}

// MetricsFor returns the metrics kept under key: a consensus round's question, or a key
// given to [Executor.StoreMetrics]. [ErrNotFound] if there are none.
func (e *Executor) MetricsFor(key string) (Metrics, error) {
	if strings.IndexByte(key, 0) >= 0 {
		return Metrics{}, invalid("MetricsFor", "the key contains a NUL byte")
	}
	ptr, release, err := e.acquire()
	if err != nil {
		return Metrics{}, err
	}
	defer release()
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var m C.pagent_metrics
	if err := call("pagent_metrics_get", func() C.pagent_status { return C.pagent_metrics_get(ptr, k, &m) }); err != nil {
		return Metrics{}, err
	}
	return goMetrics(&m), nil
}

// StoreMetrics keeps a copy of m under key (replacing any there), e.g. a batch's metrics
// from [Executor.RunWithMetrics]. The cache holds 1,024 keys, dropping the least recent.
func (e *Executor) StoreMetrics(key string, m Metrics) error {
	if strings.IndexByte(key, 0) >= 0 {
		return invalid("StoreMetrics", "the key contains a NUL byte")
	}
	ptr, release, err := e.acquire()
	if err != nil {
		return err
	}
	defer release()
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	cm := cMetrics(m)
	return call("pagent_metrics_store", func() C.pagent_status { return C.pagent_metrics_store(ptr, k, &cm) })
}

// MetricsJSON returns the executor's metrics as JSON:
// {"lifetime": {...}, "by_key": {"key": {...}}}, durations in microseconds.
func (e *Executor) MetricsJSON() ([]byte, error) {
	ptr, release, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	var s *C.char
	if err := call("pagent_executor_metrics_json", func() C.pagent_status {
		s = C.pagent_executor_metrics_json(ptr)
		if s == nil {
			return C.PAGENT_ERR_PANIC // the message says what failed
		}
		return C.PAGENT_OK
	}); err != nil {
		return nil, err
	}
	defer C.pagent_string_free(s)
	return []byte(C.GoString(s)), nil
}

// Version is the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.pagent_version()) }

// SetWorkerThreads sets the library runtime's worker thread count; only before its first
// use (else [ErrRuntime]). 0 restores the default (PAGENT_WORKER_THREADS, else one per
// core).
func SetWorkerThreads(n int) error {
	if n < 0 {
		return invalid("SetWorkerThreads", "n is negative")
	}
	return call("pagent_set_worker_threads", func() C.pagent_status { return C.pagent_set_worker_threads(C.size_t(n)) })
}

// Shutdown stops the library for the whole process: new work fails with [ErrShutdown];
// running batches get up to deadline to finish, then the rest are cancelled (their
// results still come back). Call it once, if at all, before the process exits; the
// library never does it by itself.
func Shutdown(deadline time.Duration) error {
	ms, err := millis("Shutdown", deadline)
	if err != nil {
		return err
	}
	return call("pagent_shutdown", func() C.pagent_status { return C.pagent_shutdown(ms) })
}

// batch is a submitted pagent_batch. Its reader (wait or deliver) and free run on one
// goroutine; cancel may come from another (the context's AfterFunc).
type batch struct {
	mu        sync.Mutex
	ptr       *C.pagent_batch // nil once freed
	ids       []string        // the caller's ids, or nil
	questions []string
	cancelled bool
}

// errStop ends a drain whose consumer stopped.
var errStop = errors.New("consumer stopped")

// submit starts a batch, with ids unless ids is nil (then len(ids) == len(questions));
// the caller frees it.
func (e *Executor) submit(op string, ids, questions []string) (*batch, error) {
	qs, freeQs, err := cStrings(op, "question", questions)
	if err != nil {
		return nil, err
	}
	defer freeQs() // the library copies the questions
	var cids **C.char
	if ids != nil {
		var freeIDs func()
		if cids, freeIDs, err = cStrings(op, "id", ids); err != nil {
			return nil, err
		}
		defer freeIDs()
	}
	ptr, release, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	var b *C.pagent_batch
	if ids != nil {
		err = call("pagent_submit_ids", func() C.pagent_status {
			return C.pagent_submit_ids(ptr, cids, qs, C.size_t(len(questions)), &b)
		})
	} else {
		err = call("pagent_submit", func() C.pagent_status {
			return C.pagent_submit(ptr, qs, C.size_t(len(questions)), &b)
		})
	}
	if err != nil {
		return nil, err
	}
	return &batch{ptr: b, ids: ids, questions: questions}, nil
}

// cStrings copies ss into one C buffer of NUL-terminated strings and a C array of
// pointers into it; free releases both.
func cStrings(op, what string, ss []string) (arr **C.char, free func(), err error) {
	total := 0
	for i, s := range ss {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, nil, invalid(op, fmt.Sprintf("%s %d contains a NUL byte", what, i))
		}
		total += len(s) + 1
	}
	base := C.malloc(C.size_t(total))
	buf := unsafe.Slice((*byte)(base), total)
	ptrs := unsafe.Slice((**C.char)(C.malloc(C.size_t(len(ss))*C.size_t(unsafe.Sizeof((*C.char)(nil))))), len(ss))
	off := 0
	for i, s := range ss {
		copy(buf[off:], s)
		buf[off+len(s)] = 0
		ptrs[i] = (*C.char)(unsafe.Pointer(&buf[off]))
		off += len(s) + 1
	}
	return &ptrs[0], func() {
		C.free(unsafe.Pointer(&ptrs[0]))
		C.free(base)
	}, nil
}

// watch cancels the batch when ctx ends; stop ends the watch.
func (b *batch) watch(ctx context.Context) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, b.cancel)
}

func (b *batch) cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ptr != nil {
		C.pagent_batch_cancel(b.ptr)
		b.cancelled = true
	}
}

func (b *batch) wasCancelled() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cancelled
}

// free frees the batch (cancelling what still runs), once.
func (b *batch) free() {
	b.mu.Lock()
	ptr := b.ptr
	b.ptr = nil
	b.mu.Unlock()
	C.pagent_batch_free(ptr)
}

// id is question i's id: the caller's, else i in decimal (as the library names it).
func (b *batch) id(i int) string {
	if b.ids != nil && i >= 0 && i < len(b.ids) {
		return b.ids[i]
	}
	return strconv.Itoa(i)
}

func (b *batch) question(i int) string {
	if i >= 0 && i < len(b.questions) {
		return b.questions[i]
	}
	return ""
}

// wait blocks until every call is done and returns the results in question order.
func (b *batch) wait() ([]Result, Metrics, error) {
	var rs *C.pagent_results
	if err := call("pagent_batch_wait", func() C.pagent_status { return C.pagent_batch_wait(b.ptr, -1, &rs) }); err != nil {
		return nil, Metrics{}, err
	}
	defer C.pagent_results_free(rs)
	return readResults(rs, b.question)
}

// readResults copies a pagent_results (not freed here) into Go.
func readResults(rs *C.pagent_results, question func(int) string) ([]Result, Metrics, error) {
	var cm C.pagent_metrics
	if err := call("pagent_results_metrics", func() C.pagent_status { return C.pagent_results_metrics(rs, &cm) }); err != nil {
		return nil, Metrics{}, err
	}
	n := int(C.pagent_results_len(rs))
	out := make([]Result, n)
	if n == 0 {
		return out, goMetrics(&cm), nil
	}
	tmp := make([]C.pago_result, n)
	if err := call("pagent_results_get", func() C.pagent_status {
		return C.pago_results_read(rs, &tmp[0], C.size_t(n))
	}); err != nil {
		return nil, Metrics{}, err
	}
	for i := range tmp {
		out[i] = goResult(&tmp[i], question(int(tmp[i].index)))
	}
	return out, goMetrics(&cm), nil
}

// streamChunk is how many ready results one cgo call takes from a batch.
const streamChunk = 256

// drain hands every result to yield in completion order until the batch is done,
// yield returns false (errStop), or the library fails.
func (b *batch) drain(yield func(Result) bool) error {
	ptrs := make([]*C.pagent_result, streamChunk)
	tmp := make([]C.pago_result, streamChunk)
	got := make([]Result, 0, streamChunk)
	for {
		var n C.size_t
		st, err := callStatus("pagent_batch_next", func() C.pagent_status {
			return C.pago_next_many(b.ptr, -1, &ptrs[0], &tmp[0], streamChunk, &n)
		})
		if err != nil {
			return err
		}
		if st == C.PAGENT_DONE {
			return nil
		}
		got = got[:0]
		for i := 0; i < int(n); i++ {
			got = append(got, goResult(&tmp[i], b.question(int(tmp[i].index))))
		}
		C.pago_free_many(&ptrs[0], n)
		for _, r := range got {
			if !yield(r) {
				return errStop
			}
		}
	}
}

// deliver is drain that keeps the promise of one result per question even if the
// library fails mid-stream (a library bug): the batch is then cancelled and each
// question not yet delivered comes back failed, with the error as its message.
func (b *batch) deliver(yield func(Result) bool) {
	seen := make([]bool, len(b.questions))
	err := b.drain(func(r Result) bool {
		if r.Index >= 0 && r.Index < len(seen) {
			seen[r.Index] = true
		}
		return yield(r)
	})
	if err == nil || errors.Is(err, errStop) {
		return
	}
	b.cancel()
	for i, ok := range seen {
		if !ok && !yield(Result{Index: i, AgentID: i, ID: b.id(i), Question: b.questions[i], Outcome: OutcomeFailed, Error: err.Error()}) {
			return
		}
	}
}
