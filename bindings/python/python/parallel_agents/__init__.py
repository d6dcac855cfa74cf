"""Run many AI-agent calls at once from Python: bounded concurrency, timeouts, retries,
rate limits, streaming, consensus and metrics, on the Rust executor of ``parallel-agents``.

>>> from parallel_agents import Executor, MockAgent
>>> with Executor(max_concurrency=100, timeout=5) as ex:
...     results = ex.run(MockAgent(latency=0.01), ["What is 2 + 2?", "Who wrote Hamlet?"])
>>> [r.outcome for r in results]
['ok', 'ok']

Agents: :class:`OpenAIAgent` (an OpenAI-compatible HTTP client in Rust: no Python runs per
request), :class:`MockAgent`, and any Python callable, sync or ``async def``, or DSPy
module (see :class:`CallableAgent`). Every method waits with the GIL released, in short
slices, so Ctrl-C and asyncio cancellation cancel the batch and return promptly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

from . import _native
from ._callable import CallableAgent, native_agent
from ._native import Consensus, Error, Metrics, MockAgent, OpenAIAgent, RateLimiter, Result, shutdown

__all__ = [
    "Executor",
    "OpenAIAgent",
    "MockAgent",
    "CallableAgent",
    "RateLimiter",
    "Result",
    "Metrics",
    "Consensus",
    "Error",
    "shutdown",
]
__version__: str = _native.__version__

#: How long one wait lasts before Python gets control back (signals, progress).
_SLICE = 0.05

Progress = Union[None, bool, Callable[[int, int], Any], Any]


class _Progress:
    """Reports ``(done, total)`` to a callback, a tqdm-like object (``update(n)``), or a
    tqdm bar of our own (``progress=True``)."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.total = total
        self.done = 0
        self.own = None
        self.update: Optional[Callable[[int], Any]] = None
        self.callback: Optional[Callable[[int, int], Any]] = None
        if progress is None or progress is False:
            return
        if progress is True:
            try:
                import tqdm
            except ImportError as e:  # pragma: no cover - tqdm comes with dspy
                raise ValueError("progress: True needs tqdm (pip install tqdm)") from e
            self.own = tqdm.tqdm(total=total)
            self.update = self.own.update
        elif hasattr(progress, "update") and callable(progress.update):
            self.update = progress.update
        elif callable(progress):
            self.callback = progress
        else:
            raise TypeError(
                f"progress: expected a callable(done, total), a tqdm-like object or a bool, got {type(progress).__name__}"
            )

    @property
    def active(self) -> bool:
        return self.update is not None or self.callback is not None

    def advance(self, done: int) -> None:
        if done <= self.done:
            return
        delta, self.done = done - self.done, done
        if self.update is not None:
            self.update(delta)
        if self.callback is not None:
            self.callback(done, self.total)

    def close(self) -> None:
        if self.own is not None:
            self.own.close()


def _check_questions(questions: Iterable[str]) -> List[str]:
    if isinstance(questions, (str, bytes)):
        raise TypeError("questions: expected an iterable of str, got a single str")
    try:
        qs = list(questions)
    except TypeError:
        raise TypeError(f"questions: expected an iterable of str, got {type(questions).__name__}") from None
    for i, q in enumerate(qs):
        if not isinstance(q, str):
            raise TypeError(f"questions[{i}]: expected str, got {type(q).__name__}")
    return qs


def _check_ids(ids: Optional[Iterable[str]]) -> Optional[List[str]]:
    """The host's ids, one per question (the native side checks count and repeats)."""
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids: expected an iterable of str, got a single str")
    out = list(ids)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise TypeError(f"ids[{i}]: expected str, got {type(v).__name__}")
    return out


def _value_error(name: str, what: str) -> ValueError:
    e = ValueError(f"{name}: {what}")
    e.status = "invalid_argument"  # type: ignore[attr-defined]
    e.message = f"{name}: {what}"  # type: ignore[attr-defined]
    return e


def _closed_error() -> Error:
    e = Error("the executor is closed")
    e.status = "closed"
    e.message = "the executor is closed"
    return e


class Executor:
    """Runs questions through agents with bounded concurrency.

    Args:
        max_concurrency: calls in flight at once (per agent used with this executor).
        timeout: seconds each attempt may take; past it the attempt ends ``timed_out``.
        retries: retries after a failed attempt (errors that say a retry may help: HTTP
            429/5xx, connection errors, ``ConnectionError``/``TimeoutError`` from Python).
        backoff, backoff_cap: exponential backoff with full jitter, in seconds.
        retry_timeouts: retry timed-out attempts too.
        rate_limit: call starts per second (every attempt counts); ``rate_burst`` at once.
        tokens_per_minute: token budget of an :class:`OpenAIAgent` (estimate before each
            call, the server's usage after).
        rate_limiter: a :class:`RateLimiter` shared with other executors, or kept in Redis
            and shared with other processes (``RateLimiter.redis(...)``); instead of
            ``rate_limit``.
        hedge: after this many seconds, start one duplicate of a slow call and take
            whichever answers first; ``hedge_p95``: also past the batch's observed p95.
        max_errors: once more calls than this have failed or timed out, the batch cancels
            the rest (they come back ``cancelled``).
        stream_buffer: finished results a stream may hold ahead of its consumer.
        consensus_threshold: share of votes the winner needs for ``reached``.
        consensus_early_stop: end a vote as soon as the rest cannot change the verdict.

    A bad value is a ``ValueError`` naming the argument; a wrong type a ``TypeError``.
    Use it as a context manager (or call :meth:`close`) to cancel what still runs.
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 64,
        timeout: float = 60.0,
        retries: int = 0,
        backoff: float = 0.1,
        backoff_cap: float = 10.0,
        retry_timeouts: bool = False,
        rate_limit: Optional[float] = None,
        rate_burst: int = 1,
        tokens_per_minute: Optional[int] = None,
        hedge: Optional[float] = None,
        hedge_p95: bool = False,
        max_errors: Optional[int] = None,
        stream_buffer: int = 1024,
        consensus_threshold: float = 0.6,
        consensus_early_stop: bool = True,
        journal: Optional["os.PathLike[str] | str"] = None,
        journal_rerun_failed: bool = False,
        rate_limiter: Optional[RateLimiter] = None,
    ) -> None:
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise TypeError(f"rate_limiter: expected a RateLimiter, got {type(rate_limiter).__name__}")
        for name, value in (
            ("max_concurrency", max_concurrency),
            ("retries", retries),
            ("rate_burst", rate_burst),
            ("tokens_per_minute", tokens_per_minute),
            ("max_errors", max_errors),
            ("stream_buffer", stream_buffer),
        ):
            # Beyond 64 bits the native check would only see an OverflowError.
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise _value_error(name, f"{value} is out of range")
        self._config = _native.Config(
            max_concurrency=max_concurrency,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            backoff_cap=backoff_cap,
            retry_timeouts=retry_timeouts,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            tokens_per_minute=tokens_per_minute,
            hedge=hedge,
            hedge_p95=hedge_p95,
            max_errors=max_errors,
            stream_buffer=stream_buffer,
            consensus_threshold=consensus_threshold,
            consensus_early_stop=consensus_early_stop,
            journal=None if journal is None else os.fspath(journal),
            journal_rerun_failed=journal_rerun_failed,
            rate_limiter=rate_limiter,
        )
        # One native executor per agent object (kept alive here so its id stays unique).
        self._natives: Dict[int, Tuple[Any, _native.Executor]] = {}
        self._closed = False
        #: Metrics of the last batch that finished (``run``, ``arun``, or a stream read to
        #: its end); ``None`` before any.
        self.last_metrics: Optional[Metrics] = None

    # -- set-up ----------------------------------------------------------------------

    def _native_for(self, agent: Any) -> _native.Executor:
        if self._closed:
            raise _closed_error()
        entry = self._natives.get(id(agent))
        if entry is not None and entry[0] is agent:
            return entry[1]
        native = _native.Executor(native_agent(agent), self._config)
        self._natives[id(agent)] = (agent, native)
        return native

    def _submit(
        self, agent: Any, questions: Iterable[str], ids: Optional[Iterable[str]] = None
    ) -> Tuple[Optional[_native.Batch], int]:
        native = self._native_for(agent)
        qs = _check_questions(questions)
        if not qs:
            return None, 0
        return native.submit(qs, _check_ids(ids)), len(qs)

    def _run(
        self, agent: Any, questions: Iterable[str], ids: Optional[Iterable[str]] = None
    ) -> Tuple[Optional[_native.RunTask], int]:
        native = self._native_for(agent)
        qs = _check_questions(questions)
        if not qs:
            return None, 0
        return native.run(qs, _check_ids(ids)), len(qs)

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Cancels everything still running; later calls raise :class:`Error`."""
        for _, native in self._natives.values():
            native.cancel_all()
        self._natives.clear()
        self._closed = True

    # -- batches ---------------------------------------------------------------------

    def run(
        self,
        agent: Any,
        questions: Iterable[str],
        *,
        ids: Optional[Iterable[str]] = None,
        progress: Progress = None,
    ) -> List[Result]:
        """Answers every question; returns one :class:`Result` per question, in question
        order.

        ``progress``: a callable ``(done, total)``, a tqdm-like object (its ``update(n)``
        is called), or ``True`` for a tqdm bar. On ``KeyboardInterrupt`` the batch is
        cancelled, every result is gathered (the unfinished ones ``cancelled``) and put on
        the exception as ``.results``, and the exception is re-raised."""
        task, total = self._run(agent, questions, ids)
        if task is None:
            return []
        bar = _Progress(progress, total)
        try:
            while True:
                got = task.wait(_SLICE)
                if bar.active:
                    bar.advance(task.progress()[0])
                if got is not None:
                    break
        except BaseException as exc:
            task.cancel()
            exc.results = _collect(task, None)  # type: ignore[attr-defined]
            raise
        finally:
            bar.close()
        results, self.last_metrics = got
        return results

    async def arun(
        self,
        agent: Any,
        questions: Iterable[str],
        *,
        ids: Optional[Iterable[str]] = None,
        progress: Progress = None,
    ) -> List[Result]:
        """:meth:`run` for asyncio: waits on a worker thread, never blocking the event loop.
        Cancelling the awaiting task cancels the batch; the ``CancelledError`` carries
        every result as ``.results``."""
        task, total = self._run(agent, questions, ids)
        if task is None:
            return []
        bar = _Progress(progress, total)
        # Without progress to report, one wait for the whole batch.
        slice_ = _SLICE * 4 if bar.active else None
        wait: Optional[concurrent.futures.Future] = None
        try:
            while True:
                wait = _waiters().submit(task.wait, slice_)
                got = await asyncio.wrap_future(wait)
                if bar.active:
                    bar.advance(task.progress()[0])
                if got is not None:
                    break
        except BaseException as exc:
            task.cancel()
            # The wait still running may get the results; else they come after it.
            exc.results = await asyncio.wrap_future(_waiters().submit(_collect, task, wait))  # type: ignore[attr-defined]
            raise
        finally:
            bar.close()
        results, self.last_metrics = got
        return results

    def stream(
        self,
        agent: Any,
        questions: Iterable[str],
        *,
        ids: Optional[Iterable[str]] = None,
        progress: Progress = None,
    ) -> Iterator[Result]:
        """Starts the batch now and yields results in completion order, each question
        once. Leaving the loop early (``break``, an exception, Ctrl-C) cancels the rest."""
        batch, total = self._submit(agent, questions, ids)
        return self._stream(batch, _Progress(progress, total))

    def _stream(self, batch: Optional[_native.Batch], bar: _Progress) -> Iterator[Result]:
        if batch is None:
            return
        done = 0
        try:
            while True:
                rs = batch.next_many(1024, _SLICE)
                if rs is None:
                    break
                done += len(rs)
                if bar.active:
                    bar.advance(done)
                yield from rs
            self.last_metrics = batch.metrics()
        finally:
            batch.cancel()  # a no-op once every result is out
            bar.close()

    def astream(
        self,
        agent: Any,
        questions: Iterable[str],
        *,
        ids: Optional[Iterable[str]] = None,
        progress: Progress = None,
    ) -> AsyncIterator[Result]:
        """:meth:`stream` for asyncio (``async for``). The batch starts now; cancelling the
        consuming task, or leaving the loop early, cancels the rest."""
        batch, total = self._submit(agent, questions, ids)
        return self._astream(batch, _Progress(progress, total))

    async def _astream(self, batch: Optional[_native.Batch], bar: _Progress) -> AsyncIterator[Result]:
        if batch is None:
            return
        done = 0
        try:
            while True:
                rs = await asyncio.wrap_future(_waiters().submit(batch.next_many, 1024, None))
                if rs is None:
                    break
                done += len(rs)
                if bar.active:
                    bar.advance(done)
                for r in rs:
                    yield r
            self.last_metrics = batch.metrics()
        finally:
            batch.cancel()
            bar.close()

    # -- consensus -------------------------------------------------------------------

    def consensus(self, agent: Any, question: str, n: int = 5) -> Consensus:
        """Asks ``n`` voters the same question and votes on the normalised answers.
        Ctrl-C cancels the round."""
        task = self._native_for(agent).consensus(question, n)
        try:
            while True:
                c = task.wait(_SLICE)
                if c is not None:
                    return c
        except BaseException:
            task.cancel()
            raise

    async def aconsensus(self, agent: Any, question: str, n: int = 5) -> Consensus:
        """:meth:`consensus` for asyncio; cancelling the awaiting task cancels the round."""
        task = self._native_for(agent).consensus(question, n)
        try:
            return await asyncio.wrap_future(_waiters().submit(task.wait, None))
        except BaseException:
            task.cancel()
            raise

    # -- metrics ---------------------------------------------------------------------

    def metrics(self, agent: Any = None) -> Optional[Metrics]:
        """Metrics over every call finished with ``agent`` (by default the only agent used
        so far); ``None`` if that agent was never used. ``.to_dict()`` gives a dict."""
        if agent is None:
            if len(self._natives) != 1:
                return None
            (_, native), = self._natives.values()
            return native.metrics()
        entry = self._natives.get(id(agent))
        return entry[1].metrics() if entry is not None and entry[0] is agent else None


_waiter_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
_waiter_lock = threading.Lock()


def _waiters() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that wait on batches for the async methods (never the event loop)."""
    global _waiter_pool
    with _waiter_lock:
        if _waiter_pool is None:
            _waiter_pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="parallel-agents-wait")
        return _waiter_pool


def _collect(task: _native.RunTask, wait: Optional[concurrent.futures.Future]) -> List[Result]:
    """After a cancel: every result, in question order, from the interrupted wait if it
    got them, else from waiting on (cancelled calls end promptly)."""
    if wait is not None:
        try:
            got = wait.result()
        except BaseException:
            got = None
        if got is not None:
            return got[0]
    while True:
        try:
            got = task.wait(_SLICE)
        except ValueError:  # an interrupted wait had already taken them
            return []
        if got is not None:
            return got[0]
