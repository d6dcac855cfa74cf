"""DSPy on the parallel-agents executor.

- :class:`Parallel` is a drop-in for ``dspy.Parallel``: the same constructor, call
  signature and results (exec pairs of ``(module, example)``, ``num_threads``,
  ``max_errors``, ``return_failed_examples``, ``provide_traceback``,
  ``disable_progress_bar``), with the calls run by the Rust executor instead of a
  ``ThreadPoolExecutor`` whose bookkeeping costs O(N²).
- :class:`ParallelExecutor` is a drop-in for ``dspy.utils.parallelizer.ParallelExecutor``
  (``execute(function, data)``), the executor behind ``dspy.Evaluate``.
- :func:`patch` swaps it in for DSPy's own inside a ``with`` block, so ``dspy.Evaluate``
  (and ``dspy.Parallel``, ``Module.batch``) run on ours::

      with parallel_agents.dspy.patch():
          score = dspy.Evaluate(devset=devset, metric=metric, num_threads=64)(program)

As in DSPy, each call runs with the caller's ``dspy.context`` overrides, a failing
example yields ``None`` (its exception is logged, and returned with
``return_failed_examples``), and once ``max_errors`` examples have failed the rest are
cancelled and ``Exception("Execution cancelled due to errors or interruption.")`` is
raised. DSPy's straggler resubmission (``timeout``, ``straggler_limit``) is accepted and
ignored: a slow call here holds one slot and never blocks the rest.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import dspy as _dspy
from dspy.dsp.utils.settings import settings, thread_local_overrides
from dspy.primitives.example import Example

from . import _native

try:  # DSPy >= 3.1 binds callback ancestry into worker threads
    from dspy.utils.callback_context import _bind_active_call_id
except ImportError:  # pragma: no cover - older DSPy

    def _bind_active_call_id(fn: Callable) -> Callable:
        return fn


logger = logging.getLogger("dspy.utils.parallelizer")

#: Longest a DSPy call may run here (DSPy's own executor has no hard limit either).
_CALL_TIMEOUT = 7 * 24 * 3600.0
_SLICE = 0.05
_CANCELLED = "Execution cancelled due to errors or interruption."

__all__ = ["Parallel", "ParallelExecutor", "patch"]


class ParallelExecutor:
    """``dspy.utils.parallelizer.ParallelExecutor`` on the parallel-agents executor.

    ``execute(function, data)`` calls ``function(item)`` for every item, at most
    ``num_threads`` at once, and returns the outputs in data order (``None`` for an item
    whose call raised). ``failed_indices`` and ``exceptions_map`` are filled as in DSPy.
    """

    def __init__(
        self,
        num_threads: Optional[int] = None,
        max_errors: Optional[int] = None,
        disable_progress_bar: bool = False,
        provide_traceback: Optional[bool] = None,
        compare_results: bool = False,
        timeout: int = 120,
        straggler_limit: int = 3,
    ) -> None:
        self.num_threads = num_threads or settings.num_threads
        self.max_errors = settings.max_errors if max_errors is None else max_errors
        self.disable_progress_bar = disable_progress_bar
        self.provide_traceback = provide_traceback if provide_traceback is not None else settings.provide_traceback
        self.compare_results = compare_results
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        self.error_count = 0
        self.failed_indices: List[int] = []
        self.exceptions_map: Dict[int, Exception] = {}

    def execute(self, function: Callable[[Any], Any], data: Sequence[Any]) -> List[Any]:
        import tqdm

        data = list(data)
        n = len(data)
        if n == 0:
            return []
        wrapped = _bind_active_call_id(function)
        parent_overrides = thread_local_overrides.get().copy()
        results: List[Any] = [None] * n
        errors: Dict[int, Exception] = {}

        def call(question: str, agent_id: int) -> Tuple[bool, str, bool]:
            i = int(question)
            # The caller's dspy.context overrides, as DSPy's own workers apply them.
            overrides = {**thread_local_overrides.get(), **parent_overrides.copy()}
            if overrides.get("usage_tracker"):
                overrides["usage_tracker"] = copy.deepcopy(overrides["usage_tracker"])
            token = thread_local_overrides.set(overrides)
            try:
                results[i] = wrapped(data[i])
                return True, "", False
            except Exception as e:
                errors[i] = e
                if self.provide_traceback:
                    logger.error(f"Error for {data[i]}: {e}\n{traceback.format_exc()}")
                else:
                    logger.error(f"Error for {data[i]}: {e}. Set `provide_traceback=True` for traceback.")
                return False, f"{type(e).__name__}: {e}", False
            finally:
                thread_local_overrides.reset(token)

        threads = max(1, min(int(self.num_threads), 512))
        agent = _native.CallableAgent(call=call, max_threads=threads)
        config = _native.Config(
            max_concurrency=threads,
            timeout=_CALL_TIMEOUT,
            # DSPy cancels once error_count >= max_errors; ours once it is exceeded.
            max_errors=max(int(self.max_errors) - 1, 0),
            stream_buffer=max(n, 1),
        )
        batch = _native.Executor(agent, config).submit([str(i) for i in range(n)])
        pbar = tqdm.tqdm(total=n, dynamic_ncols=True, disable=self.disable_progress_bar, file=sys.stdout)
        score = 0.0
        scored = 0
        try:
            while True:
                rs = batch.next_many(1024, _SLICE)
                if rs is None:
                    break
                for r in rs:
                    if r.outcome == "failed":
                        self.error_count += 1
                        self.failed_indices.append(r.index)
                        if r.index in errors:
                            self.exceptions_map[r.index] = errors[r.index]
                    elif r.ok and self.compare_results and results[r.index] is not None:
                        score += results[r.index][-1]
                        scored += 1
                if rs:
                    self._progress(pbar, len(rs), score, scored, n)
        except KeyboardInterrupt:
            batch.cancel()
            logger.warning("SIGINT received. Cancelling.")
            raise
        finally:
            batch.cancel()  # a no-op once every result is out
            pbar.close()
        if batch.budget_exceeded:
            logger.warning("Execution cancelled due to errors or interruption.")
            raise Exception(_CANCELLED)
        return results

    def _progress(self, pbar: Any, advanced: int, score: float, scored: int, n: int) -> None:
        if self.compare_results:
            pct = round(100 * score / scored, 1) if scored else 0
            pbar.set_description(f"Average Metric: {score:.2f} / {scored} ({pct}%)")
        else:
            pbar.set_description(f"Processed {pbar.n + advanced} / {n} examples")
        pbar.update(advanced)


class Parallel:
    """``dspy.Parallel`` on the parallel-agents executor: same arguments, same results."""

    def __init__(
        self,
        num_threads: Optional[int] = None,
        max_errors: Optional[int] = None,
        access_examples: bool = True,
        return_failed_examples: bool = False,
        provide_traceback: Optional[bool] = None,
        disable_progress_bar: bool = False,
        timeout: int = 120,
        straggler_limit: int = 3,
    ) -> None:
        self.num_threads = num_threads or settings.num_threads
        self.max_errors = settings.max_errors if max_errors is None else max_errors
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples
        self.provide_traceback = provide_traceback
        self.disable_progress_bar = disable_progress_bar
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        self.error_count = 0
        self.failed_examples: List[Any] = []
        self.exceptions: List[Exception] = []

    def forward(self, exec_pairs: List[Tuple[Any, Any]], num_threads: Optional[int] = None) -> Any:
        num_threads = num_threads if num_threads is not None else self.num_threads
        executor = ParallelExecutor(
            num_threads=num_threads,
            max_errors=self.max_errors,
            provide_traceback=self.provide_traceback,
            disable_progress_bar=self.disable_progress_bar,
            timeout=self.timeout,
            straggler_limit=self.straggler_limit,
        )

        def process_pair(pair: Tuple[Any, Any]) -> Any:
            module, example = pair
            if isinstance(example, Example):
                return module(**example.inputs()) if self.access_examples else module(example)
            if isinstance(example, dict):
                return module(**example)
            if isinstance(example, list) and module.__class__.__name__ == "Parallel":
                return module(example)
            if isinstance(example, tuple):
                return module(*example)
            raise ValueError(
                f"Invalid example type: {type(example)}, only supported types are Example, dict, list and tuple"
            )

        results = executor.execute(process_pair, exec_pairs)
        if self.return_failed_examples:
            for failed_idx in executor.failed_indices:
                if failed_idx < len(exec_pairs):
                    _, original_example = exec_pairs[failed_idx]
                    self.failed_examples.append(original_example)
                    if (exception := executor.exceptions_map.get(failed_idx)) is not None:
                        self.exceptions.append(exception)
            return results, self.failed_examples, self.exceptions
        return results

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)


@contextlib.contextmanager
def patch() -> Iterator[None]:
    """Inside the block, DSPy's ``ParallelExecutor`` is ours: ``dspy.Evaluate``,
    ``dspy.Parallel`` and ``Module.batch`` run on the parallel-agents executor."""
    import dspy.evaluate.evaluate as evaluate_mod
    import dspy.predict.parallel as parallel_mod

    saved = (evaluate_mod.ParallelExecutor, parallel_mod.ParallelExecutor)
    evaluate_mod.ParallelExecutor = ParallelExecutor
    parallel_mod.ParallelExecutor = ParallelExecutor
    try:
        yield
    finally:
        evaluate_mod.ParallelExecutor, parallel_mod.ParallelExecutor = saved


del _dspy
