package parallelagents

/*
#include <stdlib.h>
#include "parallel_agents.h"
*/
import "C"

import (
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// RateLimiter is a budget of call starts shared by every executor made with it
// (Config.RateLimiter): an in-process token bucket ([NewRateLimiter]) or a budget kept
// in Redis and shared by every process using the same URL and key
// ([NewRedisRateLimiter]). It is safe for concurrent use. Each executor keeps its own
// reference to the library's limiter, so the RateLimiter may be closed as soon as the
// executors using it are made; Close it when done (a finalizer frees a forgotten one,
// but only as a safety net, as for [Executor]).
type RateLimiter struct {
	mu  sync.RWMutex           // held shared while a library call uses ptr; Close takes it
	ptr *C.pagent_rate_limiter // nil once closed
}

// NewRateLimiter makes an in-process limiter: requestsPerMinute call starts (every
// attempt, retries included) per minute on average across all executors using it, with
// up to burst at once. requestsPerMinute must be in [1/43200, 6e10] (one start per 30
// days to 1e9 per second) and burst >= 1; burst 0 means 1.
func NewRateLimiter(requestsPerMinute float64, burst int) (*RateLimiter, error) {
	const op = "NewRateLimiter"
	if !(requestsPerMinute > 0) || math.IsInf(requestsPerMinute, 0) {
		return nil, invalid(op, "requestsPerMinute must be positive and finite")
	}
	if burst < 0 || uint64(burst) > math.MaxUint32 {
		return nil, invalid(op, "burst out of range")
	}
	if burst == 0 {
		burst = 1
	}
	var ptr *C.pagent_rate_limiter
	if err := call("pagent_rate_limiter_new", func() C.pagent_status {
		return C.pagent_rate_limiter_new(C.double(requestsPerMinute/60), C.uint32_t(burst), &ptr)
	}); err != nil {
		return nil, err
	}
	return newLimiter(ptr), nil
}

// NewRedisRateLimiter makes a limiter whose budget is kept in Redis and shared by every
// process (and executor) that uses the same url and key: requestsPerMinute starts in all
// (in [60/2592000, 6e10]). url is a Redis URL, redis://[user:password@]host[:port][/db];
// key is the Redis key holding the budget (non-empty). tokensPerMinute, if not 0, adds a
// shared token budget (key "key:tokens", at most 10^12): each attempt reserves the
// agent's estimate and settles it with the usage the agent reports.
//
// It connects now, blocking for up to 2 s: an unusable URL or a Redis that does not
// answer is an [*Error] with [ErrInvalidArg] whose message names the URL without its
// password. If Redis is lost later, a call needing more budget keeps trying for at most
// the executor's AgentTimeout, then fails with a message saying the budget was
// unreachable. Not from inside an agent function ([ErrReentrant]).
func NewRedisRateLimiter(url, key string, requestsPerMinute float64, tokensPerMinute uint64) (*RateLimiter, error) {
	const op = "NewRedisRateLimiter"
	if strings.IndexByte(url, 0) >= 0 || strings.IndexByte(key, 0) >= 0 {
		return nil, invalid(op, "url or key contains a NUL byte")
	}
	if key == "" {
		return nil, invalid(op, "key is empty")
	}
	if !(requestsPerMinute > 0) || math.IsInf(requestsPerMinute, 0) {
		return nil, invalid(op, "requestsPerMinute must be positive and finite")
	}
	cu, ck := C.CString(url), C.CString(key)
	defer C.free(unsafe.Pointer(cu))
	defer C.free(unsafe.Pointer(ck))
	var ptr *C.pagent_rate_limiter
	if err := call("pagent_rate_limiter_redis", func() C.pagent_status {
		return C.pagent_rate_limiter_redis(cu, ck, C.double(requestsPerMinute), C.uint64_t(tokensPerMinute), &ptr)
	}); err != nil {
		return nil, err
	}
	return newLimiter(ptr), nil
}

func newLimiter(ptr *C.pagent_rate_limiter) *RateLimiter {
	l := &RateLimiter{ptr: ptr}
	runtime.SetFinalizer(l, (*RateLimiter).Close)
	return l
}

// Close frees this reference to the limiter. Executors already made with it keep using
// it; [New] with a closed limiter fails with [ErrLimiterClosed]. Closing twice is
// harmless.
func (l *RateLimiter) Close() error {
	l.mu.Lock()
	ptr := l.ptr
	l.ptr = nil
	l.mu.Unlock()
	if ptr != nil {
		C.pagent_rate_limiter_free(ptr)
		runtime.SetFinalizer(l, nil)
	}
	return nil
}

// attach makes cfg share the limiter (the config keeps its own reference).
func (l *RateLimiter) attach(cfg *C.pagent_config) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.ptr == nil {
		return ErrLimiterClosed
	}
	return call("pagent_config_set_shared_rate_limiter", func() C.pagent_status {
		return C.pagent_config_set_shared_rate_limiter(cfg, l.ptr)
	})
}
