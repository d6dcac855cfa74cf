"""Python code as an agent: plain callables, ``async def`` callables and DSPy modules.

The native ``CallableAgent`` calls into this module in one of two ways:

- sync: ``call(question, agent_id)`` on one of the library's threads, GIL held;
- async: ``submit(call_id, question, agent_id, done)`` from the library's submitter
  thread; the call then runs as a task on one shared asyncio event loop (a daemon thread
  started on first use) and ends with ``done(ok, text, retryable)``;
  ``cancel(call_id)`` cancels the task (the call timed out or its batch was cancelled).

Whatever the user's code returns or raises becomes ``(ok, text, retryable)`` here, so
the native side never inspects Python values.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
import threading
import traceback
from typing import Any, Callable, Dict, Optional, Tuple

from . import _native

_MISSING = object()

#: Exception names (besides ConnectionError and TimeoutError) that mark a call retryable:
#: the usual transient errors of LLM clients (openai, litellm).
RETRYABLE_NAMES = frozenset(
    {
        "RateLimitError",
        "APIConnectionError",
        "APITimeoutError",
        "Timeout",
        "ServiceUnavailableError",
        "InternalServerError",
    }
)


def describe(exc: BaseException) -> str:
    """``module.Type: message (at file.py:12 in func)`` of an exception."""
    ty = type(exc)
    name = ty.__qualname__ if ty.__module__ in ("builtins", "__main__") else f"{ty.__module__}.{ty.__qualname__}"
    text = f"{name}: {exc}" if str(exc) else name
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        text += f" (at {f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name})"
    return text


def retryable(exc: BaseException) -> bool:
    """Whether a retry may help: connection and timeout errors, transient LLM errors."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in RETRYABLE_NAMES


def answer_text(value: Any, answer_field: str) -> str:
    """The answer in what a call returned: a ``str``; ``value[answer_field]`` of a dict;
    ``value.<answer_field>`` of an object (a DSPy ``Prediction``); a number as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        field = value.get(answer_field, _MISSING)
    else:
        field = getattr(value, answer_field, _MISSING)
    if field is _MISSING:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise TypeError(
            f"the agent returned a {type(value).__name__}; expected a str or an object with a {answer_field!r} field"
        )
    if field is None:
        raise ValueError(f"the agent's result has {answer_field} = None")
    return field if isinstance(field, str) else str(field)


def _is_dspy_module(obj: Any) -> bool:
    dspy = sys.modules.get("dspy")
    module = getattr(dspy, "Module", None) if dspy is not None else None
    return module is not None and isinstance(obj, module)


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    if isinstance(obj, functools.partial):
        return _is_async_callable(obj.func)
    call = getattr(type(obj), "__call__", None)
    return not inspect.isroutine(obj) and inspect.iscoroutinefunction(call)


class _Loop:
    """The asyncio event loop that runs every async call, on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.tasks: Dict[int, asyncio.Task] = {}
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(started.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="parallel-agents-asyncio", daemon=True)
        self.thread.start()
        started.wait()

    def submit(self, runner, answer_field, ctx, call_id, question, agent_id, done) -> None:
        self.loop.call_soon_threadsafe(self._start, runner, answer_field, ctx, call_id, question, done)

    def cancel(self, call_id: int) -> None:
        self.loop.call_soon_threadsafe(self._cancel, call_id)

    def _start(self, runner, answer_field, ctx, call_id, question, done) -> None:
        coro = self._call(runner, answer_field, call_id, question, done)
        # The task runs in a copy of the caller's context (dspy.context overrides, ...).
        self.tasks[call_id] = ctx.copy().run(self.loop.create_task, coro)

    def _cancel(self, call_id: int) -> None:
        task = self.tasks.pop(call_id, None)
        if task is not None:
            task.cancel()

    async def _call(self, runner, answer_field, call_id, question, done) -> None:
        try:
            value = await runner(question)
            text = answer_text(value, answer_field)
        except asyncio.CancelledError:
            done(False, "cancelled", False)
            raise
        except Exception as exc:  # the user's code failed: a failed call, not a crash
            done(False, describe(exc), retryable(exc))
        except BaseException as exc:
            done(False, describe(exc), False)
            raise
        else:
            done(True, text, False)
        finally:
            self.tasks.pop(call_id, None)


_loop: Optional[_Loop] = None
_loop_lock = threading.Lock()


def event_loop() -> _Loop:
    """The shared event loop, started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = _Loop()
        return _loop


class CallableAgent:
    """Python code as an agent.

    ``fn`` is called per question as ``fn(question)``, or as ``fn(**{input_field: question})``
    when ``input_field`` is set (the default for a DSPy module: ``"question"``). It may be
    ``async def`` (run as a task on one shared asyncio loop; thousands in flight without a
    thread each) or sync (run on the library's threads, at most ``max_threads`` at once,
    by default as many as the executor's ``max_concurrency``, up to 512). A DSPy module
    is called through ``acall`` when it has ``aforward`` (``Predict``, ``ChainOfThought``,
    ...) and ``prefer_async`` is true.

    The answer is what ``fn`` returns if it is a ``str``; otherwise its ``answer_field``
    (attribute or key; a DSPy ``Prediction``'s ``.answer``), or a number as text. An
    exception becomes a failed call whose error reads ``Type: message (at file:line in
    function)``; ``ConnectionError``, ``TimeoutError`` and the usual transient LLM-client
    errors are retried when the executor has ``retries``.

    Context variables (``dspy.context(...)`` overrides among them) are those in effect
    when the agent is made.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        input_field: Optional[str] = None,
        answer_field: str = "answer",
        max_threads: Optional[int] = None,
        prefer_async: bool = True,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        if input_field is not None and (not isinstance(input_field, str) or not input_field):
            raise ValueError("input_field: must be a non-empty str or None")
        if not isinstance(answer_field, str) or not answer_field:
            raise ValueError("answer_field: must be a non-empty str")
        self.fn = fn
        is_module = _is_dspy_module(fn)
        if input_field is None and is_module:
            input_field = "question"
        target: Callable[..., Any] = fn
        is_async = _is_async_callable(fn)
        if is_module and prefer_async:
            acall = getattr(fn, "acall", None)
            if acall is not None and inspect.iscoroutinefunction(acall) and hasattr(fn, "aforward"):
                target, is_async = acall, True
        if input_field is not None:
            key = input_field

            def invoke(question: str, _target=target) -> Any:
                return _target(**{key: question})

        else:
            invoke = target
        ctx = contextvars.copy_context()
        if is_async:
            loop = event_loop()
            self._native = _native.CallableAgent(
                submit=functools.partial(loop.submit, invoke, answer_field, ctx),
                cancel=loop.cancel,
                max_threads=max_threads,
            )
        else:

            def call(question: str, agent_id: int) -> Tuple[bool, str, bool]:
                try:
                    value = ctx.copy().run(invoke, question)
                    if inspect.isawaitable(value):
                        value = asyncio.run_coroutine_threadsafe(_awaited(value), event_loop().loop).result()
                    return True, answer_text(value, answer_field), False
                except Exception as exc:  # the user's code failed: a failed call
                    return False, describe(exc), retryable(exc)

            self._native = _native.CallableAgent(call=call, max_threads=max_threads)
        self.is_async = is_async

    def __repr__(self) -> str:
        kind = "async" if self.is_async else "sync"
        return f"CallableAgent({self.fn!r}, {kind})"


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def native_agent(agent: Any) -> Any:
    """The native agent for anything ``Executor`` accepts as an agent."""
    if isinstance(agent, (_native.MockAgent, _native.OpenAIAgent, _native.CallableAgent)):
        return agent
    if isinstance(agent, CallableAgent):
        return agent._native
    if callable(agent):
        return CallableAgent(agent)._native
    raise TypeError(
        "agent: expected an OpenAIAgent, MockAgent, CallableAgent, a callable or a DSPy module, "
        f"got {type(agent).__name__}"
    )
