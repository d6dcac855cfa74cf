"""Ray Data fan-out: answer a dataset's questions on many actors, each holding many calls
in flight on one :class:`parallel_agents.Executor`.

:class:`Answerer` is a callable class for ``ray.data.Dataset.map_batches`` with an actor
pool (``compute=ray.data.ActorPoolStrategy(...)``, Ray Data's current API; the older
``concurrency=`` argument is deprecated)::

    import ray
    from parallel_agents.ray import Answerer

    ds = ray.data.read_json("questions.jsonl")  # rows {"id": ..., "question": ...}
    answers = ds.map_batches(
        Answerer,
        fn_constructor_kwargs={
            "agent": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini"},
            "executor": {"max_concurrency": 64, "timeout": 60, "retries": 3},
        },
        batch_size=256,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=4),
        udf_modifying_row_count=False,
    )
    answers.write_parquet("answers/")

Every input row comes back as one output row with the same id, its other columns and
``answer``, ``outcome``, ``error``, ``prompt_tokens``, ``completion_tokens``,
``attempts``. A call that fails, a question that is not a string, an agent that raises:
each is a row with ``outcome`` other than ``"ok"`` and an ``error``, never an exception
that fails the batch.

Faults: Ray Data restarts a dead actor and reruns the tasks it held (its defaults for an
actor pool are ``max_restarts=-1``, ``max_task_retries=-1``); a rerun task asks every
question of its input again, answered or not, so a killed actor costs at most the rows of
the tasks it was running (``max_concurrent_calls_per_actor`` tasks, each of whole input
blocks: ``batch_size`` rows, or more when the blocks are larger).

Resuming: the output keeps the id column unchanged, so Ray Data's checkpointing by id
column (``ray.data.checkpoint.CheckpointConfig``, in the pinned Ray 2.60; set on
``DataContext.get_current().checkpoint_config``) works with it: for a pipeline that
starts with a read (``read_json``, ``read_parquet``, ...) and ends with a write, a rerun
skips the ids already written. Its filter is an actor needing a CPU of its own (with
none free, the pipeline waits). Without it, a rerun can skip finished ids itself by
filtering the input on the ids found in the earlier output.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import Executor, OpenAIAgent, Result

__all__ = ["Answerer", "OUTPUT_COLUMNS"]

#: The columns :class:`Answerer` adds to each row (besides the id column it keeps).
OUTPUT_COLUMNS: Tuple[str, ...] = (
    "answer",
    "outcome",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "attempts",
)

#: ``agent=``: a zero-argument factory run inside each actor, or ``OpenAIAgent`` keywords.
AgentSpec = Union[Callable[[], Any], Mapping[str, Any]]


class Answerer:
    """A ``map_batches`` callable class: one :class:`~parallel_agents.Executor` and one
    agent per actor, answering each batch's questions with many calls in flight.

    Args:
        agent: how to build the agent inside the actor (agents are not picklable): a
            zero-argument callable returning an agent (an :class:`OpenAIAgent`, a
            :class:`MockAgent`, any Python callable the :class:`Executor` accepts), which
            cloudpickle can ship to the workers; or a dict of :class:`OpenAIAgent`
            keyword arguments.
        id_column: the column naming each row; copied unchanged to the output.
        question_column: the column holding each row's question (a ``str``).
        executor: keyword arguments of :class:`~parallel_agents.Executor` (e.g.
            ``max_concurrency``, ``timeout``, ``retries``, ``rate_limit``); each actor has
            its own executor, so ``max_concurrency`` and ``rate_limit`` are per actor.
        rate_limiter: a zero-argument factory returning a
            :class:`~parallel_agents.RateLimiter` (e.g.
            ``lambda: RateLimiter.redis(url, key, requests_per_minute=600)``), called once
            per actor and passed as ``Executor(rate_limiter=...)``, so that every actor
            draws on one budget kept in Redis and shared across processes and machines (a
            RateLimiter itself cannot be pickled to the actors).
        keep_columns: keep the input's other columns in the output (they cost nothing in
            any batch format); ``False`` returns only the id column and the results.

    A batch may be a ``pyarrow.Table`` (``batch_format="pyarrow"``, the cheapest), a
    ``pandas.DataFrame`` or a dict of NumPy arrays; the output has the same format.
    Building the agent or the executor raises in the actor's constructor: that is a
    configuration error, which Ray Data reports instead of turning every row into one.

    Several batches may run at once in one actor
    (``ActorPoolStrategy(max_concurrent_calls_per_actor=n, enable_true_multi_threading=True)``):
    they share the actor's executor, so its ``max_concurrency`` still bounds the calls
    in flight per actor, and a slow tail of one batch no longer idles the actor.
    """

    def __init__(
        self,
        agent: AgentSpec,
        *,
        id_column: str = "id",
        question_column: str = "question",
        executor: Optional[Mapping[str, Any]] = None,
        rate_limiter: Optional[Callable[[], Any]] = None,
        keep_columns: bool = True,
    ) -> None:
        for name, value in (("id_column", id_column), ("question_column", question_column)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name}: expected a non-empty str, got {value!r}")
        if id_column == question_column:
            raise ValueError("id_column and question_column must differ")
        for name, value in (("id_column", id_column), ("question_column", question_column)):
            if value in OUTPUT_COLUMNS:
                raise ValueError(f"{name}: {value!r} is an output column (the results would overwrite it)")
        self.id_column = id_column
        self.question_column = question_column
        self.keep_columns = bool(keep_columns)
        self.agent = _build_agent(agent)
        kwargs: Dict[str, Any] = dict(executor or {})
        if rate_limiter is not None:
            if not callable(rate_limiter):
                raise TypeError(
                    f"rate_limiter: expected a zero-argument callable returning a RateLimiter, got {type(rate_limiter).__name__}"
                )
            if "rate_limiter" in kwargs:
                raise ValueError("rate_limiter: given both as an argument and in executor=")
            kwargs["rate_limiter"] = rate_limiter()
        self.executor = Executor(**kwargs)
        # Make the executor's native side for this agent now: batches running at once in
        # this actor then share it (and its max_concurrency) instead of racing to make two.
        self.executor.run(self.agent, [])
        #: This actor's process id (what a test kills to play a lost worker).
        self.pid = os.getpid()

    def __call__(self, batch: Any) -> Any:
        """Answers every row of ``batch``; returns the batch with the result columns
        (see :data:`OUTPUT_COLUMNS`), one row per input row, in input order."""
        table = _Batch(batch)
        ids = table.column(self.id_column)
        questions = table.column(self.question_column)
        n = len(questions)
        rows: List[Optional[Tuple[Any, ...]]] = [None] * n
        asked: List[int] = []
        for i, q in enumerate(questions):
            if isinstance(q, str):
                asked.append(i)
            else:
                rows[i] = _failed(f"{self.question_column}: expected str, got {type(q).__name__}")
        if asked:
            try:
                results: Sequence[Result] = self.executor.run(self.agent, [questions[i] for i in asked])
            except Exception as e:  # the batch as a whole failed: every row says why
                results = []
                error = f"{type(e).__name__}: {e}"
                for i in asked:
                    rows[i] = _failed(error)
            for i, r in zip(asked, results):
                rows[i] = (r.answer, r.outcome, r.error, r.prompt_tokens, r.completion_tokens, r.attempts)
        columns = list(zip(*rows)) if n else [() for _ in OUTPUT_COLUMNS]
        return table.output(
            ids, dict(zip(OUTPUT_COLUMNS, columns)), self.id_column if not self.keep_columns else None
        )

    def __repr__(self) -> str:
        return f"Answerer(pid={self.pid}, id_column={self.id_column!r}, question_column={self.question_column!r})"


def _build_agent(agent: AgentSpec) -> Any:
    if isinstance(agent, Mapping):
        return OpenAIAgent(**dict(agent))
    if callable(agent):
        return agent()
    raise TypeError(
        f"agent: expected a zero-argument callable returning an agent or a dict of OpenAIAgent keywords, got {type(agent).__name__}"
    )


def _failed(error: str) -> Tuple[Any, ...]:
    """A row that never reached the agent."""
    return (None, "failed", error, None, None, 0)


class _Batch:
    """One batch in any of Ray Data's formats: read a column as a list, write the output
    in the same format."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.kind = _kind(batch)

    def column(self, name: str) -> List[Any]:
        b = self.batch
        try:
            if self.kind == "arrow":
                return b.column(name).to_pylist()
            col = b[name]
        except KeyError:
            raise KeyError(f"the batch has no column {name!r} (it has {list(_names(b, self.kind))})") from None
        return col.tolist() if hasattr(col, "tolist") else list(col)

    def output(self, ids: List[Any], results: Dict[str, Sequence[Any]], only: Optional[str]) -> Any:
        b = self.batch
        if self.kind == "arrow":
            import pyarrow as pa

            types = {"prompt_tokens": pa.int64(), "completion_tokens": pa.int64(), "attempts": pa.int64()}
            out = b.select([only]) if only is not None else b
            for name, values in results.items():
                col = pa.array(list(values), type=types.get(name, pa.string()))
                i = out.schema.get_field_index(name)
                out = out.set_column(i, name, col) if i >= 0 else out.append_column(name, col)
            return out
        if self.kind == "pandas":
            out = b[[only]].copy() if only is not None else b.copy()
            for name, values in results.items():
                out[name] = _pandas_column(name, values)
            return out
        import numpy as np

        out = {only: b[only]} if only is not None else dict(b)
        for name, values in results.items():
            out[name] = np.array(values, dtype=np.int64 if name == "attempts" else object)
        return out


def _kind(batch: Any) -> str:
    mod = type(batch).__module__
    if mod.startswith("pyarrow"):
        return "arrow"
    if mod.startswith("pandas"):
        return "pandas"
    if isinstance(batch, Mapping):
        return "numpy"
    raise TypeError(f"batch: expected a pyarrow.Table, a pandas.DataFrame or a dict of arrays, got {type(batch).__name__}")


def _names(batch: Any, kind: str) -> Sequence[str]:
    return batch.column_names if kind == "arrow" else list(batch.keys())


def _pandas_column(name: str, values: Sequence[Any]) -> Any:
    import pandas as pd

    if name == "attempts":
        return pd.array(list(values), dtype="int64")
    if name in ("prompt_tokens", "completion_tokens"):
        return pd.array(list(values), dtype="Int64")  # None stays missing, not NaN
    return pd.array(list(values), dtype=object)
