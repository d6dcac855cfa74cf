// Package parallelagents runs many AI-agent calls at once through libparallel_agents,
// the project's Rust library, over its C ABI (cgo, found with
// `#cgo pkg-config: parallel_agents`).
//
// An [Executor] answers questions with an [Agent]: the built-in [MockAgent], an
// OpenAI-compatible HTTP endpoint ([OpenAIAgent]), or a Go function ([AgentFunc], or the
// completion-based [AsyncAgentFunc] and [Async]). The library runs the calls with
// bounded concurrency, timeouts, retries and metrics on its own threads;
// [Executor.Run] returns one [Result] per question in question order,
// [Executor.Stream] and [Executor.StreamSeq] hand results out in completion order, and
// [Executor.Consensus] asks several agents and votes.
//
// Cancelling the context given to Run or Stream cancels the batch: calls still running
// or not yet started come back with [OutcomeCancelled], so every question still comes
// back exactly once.
//
// Failed library calls return errors that wrap a [Status]; compare with [errors.Is]
// against the exported sentinels ([ErrConfig], [ErrInvalidArg], ...), and use
// [errors.As] with [*Error] for the operation and the library's message. An agent's
// failure is not an error: it is a [Result] whose Outcome is not [OutcomeOK].
//
// # Scaling out: shared rate limits, ids and the journal
//
// A [RateLimiter] is a budget of call starts shared by executors: [NewRateLimiter] for
// one process, [NewRedisRateLimiter] for every process (on any host) that uses the same
// Redis URL and key, optionally with a shared tokens-per-minute budget. Give it to each
// executor as Config.RateLimiter (instead of Config.RateLimit); the executors keep their
// own references, so the limiter may be closed once they are made.
//
//	lim, err := parallelagents.NewRedisRateLimiter("redis://127.0.0.1:6379/0", "openai", 500, 0)
//	...
//	ex, err := parallelagents.New(parallelagents.Config{Agent: agent, RateLimiter: lim})
//	lim.Close()
//
// [Executor.RunIDs] and [Executor.StreamIDs] give each question an id (a document
// name, a row key) that comes back in Result.ID; an id given twice is [ErrDuplicateID].
// With Config.Journal (a file path), every finished result is on disk before it is
// handed back, and a later executor on the same journal (after a crash, a retry of the
// job, on another worker with the same disk) hands back the stored results
// (Result.Replayed) without calling the agent and runs only the missing ids; with
// Config.JournalRerunFailed it also reruns the stored failures that could succeed
// (Result.Retryable). One executor holds a journal at a time ([ErrJournalLocked]) until
// its Close. So a job runner that retries failed jobs can shard the work, run each
// shard with RunIDs and a journal per shard, and share one Redis budget.
//
// Ownership: every C object this package makes is freed by it exactly once. Executors
// and rate limiters hold library resources until their Close (a finalizer frees a
// forgotten one, but only as a safety net); results, metrics and consensus verdicts are
// plain Go values.
//
// Building: point pkg-config at the installed library, e.g.
//
//	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib" go build
package parallelagents
