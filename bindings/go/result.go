package parallelagents

/*
#include "bridge.h"
*/
import "C"

import "time"

// Outcome is how a call ended.
type Outcome int

// The outcomes of a call (pagent_outcome).
const (
	OutcomeOK        Outcome = iota // the agent answered
	OutcomeFailed                   // the agent failed (error, panic) after any retries
	OutcomeTimedOut                 // the last attempt ran past AgentTimeout
	OutcomeCancelled                // cancelled (context, early stop, shutdown) or never started
)

// String names the outcome: "ok", "failed", "timed out" or "cancelled".
func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeFailed:
		return "failed"
	case OutcomeTimedOut:
		return "timed out"
	case OutcomeCancelled:
		return "cancelled"
	}
	return "unknown outcome"
}

// Result is one call's result, copied into Go memory.
type Result struct {
	Index            int           // position of the question in its batch (voter index in consensus)
	AgentID          int           // logical agent slot: question index, voter index or pool member
	Question         string        // the question asked
	Outcome          Outcome       // how the call ended
	Answer           string        // the answer, if Outcome is OutcomeOK
	Error            string        // why it did not succeed, otherwise
	Duration         time.Duration // from the first attempt's start to the end (0 if never started)
	Attempts         int           // attempts made, retries included
	PromptTokens     int           // tokens reported by an LLM agent (0 otherwise)
	CompletionTokens int           // tokens reported by an LLM agent (0 otherwise)
	// ID is the question's id: the caller's ([Executor.RunIDs]), else its index in
	// decimal ("0", "1", ...; a consensus voter's index).
	ID string
	// Replayed reports that the result was read back from the journal (Config.Journal)
	// instead of calling the agent.
	Replayed bool
	// Retryable reports that a rerun could succeed: a failure the agent called retryable
	// (see [Retryable]) or a timeout. False for answered calls.
	Retryable bool
}

// OK reports whether the agent answered.
func (r Result) OK() bool { return r.Outcome == OutcomeOK }

// goResult copies a result read by pago_read. question is the question asked.
func goResult(c *C.pago_result, question string) Result {
	r := Result{
		Index:            int(c.index),
		AgentID:          int(c.agent_id),
		Question:         question,
		Outcome:          Outcome(c.outcome),
		Duration:         time.Duration(c.duration_us) * time.Microsecond,
		Attempts:         int(c.attempts),
		PromptTokens:     int(c.prompt_tokens),
		CompletionTokens: int(c.completion_tokens),
		Replayed:         bool(c.replayed),
		Retryable:        bool(c.retryable),
	}
	if c.id != nil {
		r.ID = C.GoString(c.id)
	}
	if c.answer != nil {
		r.Answer = C.GoString(c.answer)
	}
	if c.error != nil {
		r.Error = C.GoString(c.error)
	}
	return r
}

// Metrics are an executor's, a batch's or a consensus round's figures. Latency figures
// are over calls that ran to an outcome; cancelled calls are only counted.
type Metrics struct {
	TotalDuration    time.Duration // first call's start to last call's end
	Successful       int           // calls that answered
	Failed           int           // calls that failed after their retries
	TimedOut         int           // calls whose last attempt timed out
	Cancelled        int           // calls cancelled or never started
	Total            int           // the sum of the four counts
	Attempts         int           // attempts, retries included
	Hedged           int           // calls for which a hedge was started
	HedgeWins        int           // hedges that answered first
	AvgDuration      time.Duration // mean per-call duration
	MinDuration      time.Duration // shortest
	MaxDuration      time.Duration // longest
	P50Duration      time.Duration // median
	P95Duration      time.Duration // 95th percentile
	P99Duration      time.Duration // 99th percentile
	Throughput       float64       // calls that ran to an outcome per second of TotalDuration
	PromptTokens     int           // prompt tokens of the answering calls
	CompletionTokens int           // completion tokens of the answering calls
}

func us(v C.uint64_t) time.Duration { return time.Duration(v) * time.Microsecond }

func goMetrics(m *C.pagent_metrics) Metrics {
	return Metrics{
		TotalDuration:    us(m.total_duration_us),
		Successful:       int(m.successful_count),
		Failed:           int(m.failed_count),
		TimedOut:         int(m.timed_out_count),
		Cancelled:        int(m.cancelled_count),
		Total:            int(m.total_count),
		Attempts:         int(m.attempts),
		Hedged:           int(m.hedged_count),
		HedgeWins:        int(m.hedge_wins),
		AvgDuration:      us(m.avg_duration_us),
		MinDuration:      us(m.min_duration_us),
		MaxDuration:      us(m.max_duration_us),
		P50Duration:      us(m.p50_duration_us),
		P95Duration:      us(m.p95_duration_us),
		P99Duration:      us(m.p99_duration_us),
		Throughput:       float64(m.throughput),
		PromptTokens:     int(m.prompt_tokens),
		CompletionTokens: int(m.completion_tokens),
	}
}

func cMetrics(m Metrics) C.pagent_metrics {
	u := func(d time.Duration) C.uint64_t { return C.uint64_t(d / time.Microsecond) }
	return C.pagent_metrics{
		total_duration_us: u(m.TotalDuration),
		successful_count:  C.uint64_t(m.Successful),
		failed_count:      C.uint64_t(m.Failed),
		timed_out_count:   C.uint64_t(m.TimedOut),
		cancelled_count:   C.uint64_t(m.Cancelled),
		total_count:       C.uint64_t(m.Total),
		attempts:          C.uint64_t(m.Attempts),
		hedged_count:      C.uint64_t(m.Hedged),
		hedge_wins:        C.uint64_t(m.HedgeWins),
		avg_duration_us:   u(m.AvgDuration),
		min_duration_us:   u(m.MinDuration),
		max_duration_us:   u(m.MaxDuration),
		p50_duration_us:   u(m.P50Duration),
		p95_duration_us:   u(m.P95Duration),
		p99_duration_us:   u(m.P99Duration),
		throughput:        C.double(m.Throughput),
		prompt_tokens:     C.uint64_t(m.PromptTokens),
		completion_tokens: C.uint64_t(m.CompletionTokens),
	}
}
