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
// Ownership: every C object this package makes is freed by it exactly once. Executors
// hold library resources until [Executor.Close] (a finalizer frees a forgotten one, but
// only as a safety net); results, metrics and consensus verdicts are plain Go values.
//
// Building: point pkg-config at the installed library, e.g.
//
//	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib" go build
package parallelagents
