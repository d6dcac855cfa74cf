package parallelagents

/*
#include <stdlib.h>
#include "parallel_agents.h"
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"
)

// Config describes an executor: its agent (or pool of agents) and how calls run. Zero
// fields keep the library's defaults (shown in brackets).
type Config struct {
	// Agent answers the questions. Exactly one of Agent and Pool must be set.
	Agent Agent
	// Pool is a set of agents (e.g. one per model or endpoint) that each serve one call
	// at a time; work goes to whichever is free, and consensus voter i asks Pool[i % n].
	Pool []Agent

	MaxConcurrency int           // calls in flight at once, across all batches [4]
	AgentTimeout   time.Duration // limit on each attempt, rounded up to ms [30 s]
	MaxRetries     int           // retries after a retryable failure, 0 to 100 [0]
	// Backoff before retry k is uniform in [0, min(RetryBackoffCap,
	// RetryBackoffBase * 2^(k-1))]; set both or neither.
	RetryBackoffBase, RetryBackoffCap time.Duration
	RetryTimeouts                     bool    // retry attempts that timed out [no]
	RateLimit                         float64 // call starts per second [0: no limit]
	RateBurst                         int     // starts allowed at once under RateLimit [1]
	// RateLimiter is a start budget shared with other executors (and, for a Redis one,
	// other processes); set it or RateLimit/RateBurst, not both. The executor keeps its
	// own reference: the limiter may be closed once New has returned.
	RateLimiter *RateLimiter
	// ConsensusThreshold is the fraction of counted votes the winner needs, in (0, 1]
	// [0.6].
	ConsensusThreshold float64
	// NoEarlyStop makes consensus rounds run every voter; by default a round stops
	// (cancelling the rest) once the outstanding calls cannot change the verdict.
	NoEarlyStop   bool
	StreamBuffer  int           // results a stream may run ahead of its reader [64]
	HedgeAfter    time.Duration // start one duplicate of a call running this long [off]
	HedgeAfterP95 bool          // ...or running past the batch's p95 so far [off]
	// MaxErrors is an error budget: once more than MaxErrors calls of a batch have failed
	// or timed out, the batch cancels the rest [0: no budget].
	MaxErrors int
	// Journal is the path of a journal (an SQLite file, created if missing) ["": none].
	// Every finished result is on disk before it is handed back, and an executor made
	// later with the same journal (after a crash, in another process) hands back the
	// stored results (Result.Replayed) without calling the agent, running only the
	// missing ones. Results are keyed by id ([Executor.RunIDs]), else by index. One
	// executor holds a journal at a time, until it is closed ([ErrJournalLocked]); a
	// journal made by a different agent or options is [ErrJournalMismatch].
	Journal string
	// JournalRerunFailed runs again, on a rerun, the questions whose stored result is a
	// retryable failure (Result.Retryable) instead of replaying it [no].
	JournalRerunFailed bool
}

// millis converts a duration to whole milliseconds, rounding up (so 1 ns is 1 ms).
func millis(field string, d time.Duration) (C.uint64_t, error) {
	if d < 0 {
		return 0, invalid("New", field+" is negative")
	}
	return C.uint64_t((d + time.Millisecond - 1) / time.Millisecond), nil
}

// newConfig builds the library config; the caller frees it (pagent_config_free).
func (c *Config) newConfig() (*C.pagent_config, error) {
	cfg := C.pagent_config_new()
	err := c.apply(cfg)
	if err != nil {
		C.pagent_config_free(cfg)
		return nil, err
	}
	return cfg, nil
}

func (c *Config) apply(cfg *C.pagent_config) error {
	nonNeg := func(field string, v int) error {
		if v < 0 {
			return invalid("New", fmt.Sprintf("%s is negative (%d)", field, v))
		}
		return nil
	}
	for field, v := range map[string]int{
		"MaxConcurrency": c.MaxConcurrency, "MaxRetries": c.MaxRetries, "RateBurst": c.RateBurst,
		"StreamBuffer": c.StreamBuffer, "MaxErrors": c.MaxErrors,
	} {
		if err := nonNeg(field, v); err != nil {
			return err
		}
	}
	if c.MaxConcurrency != 0 {
		if err := call("pagent_config_set_max_concurrency", func() C.pagent_status {
			return C.pagent_config_set_max_concurrency(cfg, C.size_t(c.MaxConcurrency))
		}); err != nil {
			return err
		}
	}
	if c.AgentTimeout != 0 {
		ms, err := millis("AgentTimeout", c.AgentTimeout)
		if err != nil {
			return err
		}
		if err := call("pagent_config_set_agent_timeout_ms", func() C.pagent_status {
			return C.pagent_config_set_agent_timeout_ms(cfg, ms)
		}); err != nil {
			return err
		}
	}
	if c.MaxRetries != 0 {
		if uint64(c.MaxRetries) > math.MaxUint32 {
			return invalid("New", "MaxRetries out of range")
		}
		if err := call("pagent_config_set_max_retries", func() C.pagent_status {
			return C.pagent_config_set_max_retries(cfg, C.uint32_t(c.MaxRetries))
		}); err != nil {
			return err
		}
	}
	if c.RetryBackoffBase != 0 || c.RetryBackoffCap != 0 {
		base, err := millis("RetryBackoffBase", c.RetryBackoffBase)
		if err != nil {
			return err
		}
		capMs, err := millis("RetryBackoffCap", c.RetryBackoffCap)
		if err != nil {
			return err
		}
		if err := call("pagent_config_set_retry_backoff_ms", func() C.pagent_status {
			return C.pagent_config_set_retry_backoff_ms(cfg, base, capMs)
		}); err != nil {
			return err
		}
	}
	if c.RetryTimeouts {
		if err := call("pagent_config_set_retry_timeouts", func() C.pagent_status {
			return C.pagent_config_set_retry_timeouts(cfg, true)
		}); err != nil {
			return err
		}
	}
	if c.RateLimiter != nil && (c.RateLimit != 0 || c.RateBurst != 0) {
		return invalid("New", "set Config.RateLimiter or Config.RateLimit/RateBurst, not both")
	}
	if c.RateLimiter != nil {
		if err := c.RateLimiter.attach(cfg); err != nil {
			return err
		}
	}
	if c.Journal != "" {
		if strings.IndexByte(c.Journal, 0) >= 0 {
			return invalid("New", "Config.Journal contains a NUL byte")
		}
		p := C.CString(c.Journal)
		defer C.free(unsafe.Pointer(p))
		if err := call("pagent_config_set_journal", func() C.pagent_status {
			return C.pagent_config_set_journal(cfg, p)
		}); err != nil {
			return err
		}
	}
	if c.JournalRerunFailed {
		if err := call("pagent_config_set_journal_rerun_failed", func() C.pagent_status {
			return C.pagent_config_set_journal_rerun_failed(cfg, true)
		}); err != nil {
			return err
		}
	}
	if c.RateLimit != 0 || c.RateBurst != 0 {
		burst := c.RateBurst
		if burst == 0 {
			burst = 1
		}
		if uint64(burst) > math.MaxUint32 {
			return invalid("New", "RateBurst out of range")
		}
		if err := call("pagent_config_set_rate_limit", func() C.pagent_status {
			return C.pagent_config_set_rate_limit(cfg, C.double(c.RateLimit), C.uint32_t(burst))
		}); err != nil {
			return err
		}
	}
	if c.ConsensusThreshold != 0 {
		if err := call("pagent_config_set_consensus_threshold", func() C.pagent_status {
			return C.pagent_config_set_consensus_threshold(cfg, C.double(c.ConsensusThreshold))
		}); err != nil {
			return err
		}
	}
	if c.NoEarlyStop {
		if err := call("pagent_config_set_consensus_early_stop", func() C.pagent_status {
			return C.pagent_config_set_consensus_early_stop(cfg, false)
		}); err != nil {
			return err
		}
	}
	if c.StreamBuffer != 0 {
		if err := call("pagent_config_set_stream_buffer", func() C.pagent_status {
			return C.pagent_config_set_stream_buffer(cfg, C.size_t(c.StreamBuffer))
		}); err != nil {
			return err
		}
	}
	if c.HedgeAfter != 0 || c.HedgeAfterP95 {
		ms, err := millis("HedgeAfter", c.HedgeAfter)
		if err != nil {
			return err
		}
		if err := call("pagent_config_set_hedge", func() C.pagent_status {
			return C.pagent_config_set_hedge(cfg, ms, C.bool(c.HedgeAfterP95))
		}); err != nil {
			return err
		}
	}
	if c.MaxErrors != 0 {
		if err := call("pagent_config_set_max_errors", func() C.pagent_status {
			return C.pagent_config_set_max_errors(cfg, C.size_t(c.MaxErrors))
		}); err != nil {
			return err
		}
	}
	return nil
}
