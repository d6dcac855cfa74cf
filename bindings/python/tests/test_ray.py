"""parallel_agents.ray: the Answerer on its own (every failure is a row), then 20,000
questions through Ray Data's map_batches on a 2-node local cluster against mock-llm, one
actor killed mid-run."""

from __future__ import annotations

import bisect
import collections
import faulthandler
import json
import os
import pathlib
import shutil
import signal
import tempfile
import threading
import time
import urllib.request
import warnings
from typing import Any, Dict, List

import pytest

from conftest import MockLLM
from parallel_agents import OpenAIAgent

TESTS = pathlib.Path(__file__).resolve().parent
# Ray Data's DataContext reads its own deprecated settings when copied: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def need(module: str) -> Any:
    """Imports ``module``; missing, the test is skipped loudly, and fails under CI (a part
    of the suite is never skipped there)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        why = f"{module} is not importable ({e}): pip install -r requirements-dev.txt"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {why}")
        warnings.warn(f"SKIPPED: {why}")
        pytest.skip(f"SKIPPED: {why}")


# -- the Answerer without Ray --------------------------------------------------------


def flaky(question: str) -> str:
    """A Python agent that raises on some questions."""
    if "boom" in question:
        raise ValueError(f"no answer to {question}")
    return question.upper()


def as_table(batch: Any, fmt: str) -> Any:
    """An output batch of format ``fmt`` as a pyarrow.Table."""
    import pyarrow as pa

    return {"pyarrow": lambda: batch, "pandas": lambda: pa.Table.from_pandas(batch), "numpy": lambda: pa.table(batch)}[fmt]()


@pytest.mark.parametrize("fmt", ["pyarrow", "pandas", "numpy"])
def test_every_failure_is_a_row_in_every_batch_format(fmt):
    need("pyarrow")
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from parallel_agents.ray import OUTPUT_COLUMNS, Answerer

    cols = {"key": [10, 11, 12, 13], "text": ["a", "boom 1", None, "d"], "extra": [1.5, 2.5, 3.5, 4.5]}
    batch = {
        "pyarrow": lambda: pa.table(cols),
        "pandas": lambda: pd.DataFrame(cols),
        "numpy": lambda: {k: np.array(v, dtype=object if k == "text" else None) for k, v in cols.items()},
    }[fmt]()
    ans = Answerer(lambda: flaky, id_column="key", question_column="text", executor={"max_concurrency": 4})
    out = ans(batch)
    table = as_table(out, fmt)
    rows = table.to_pylist()
    assert [r["key"] for r in rows] == [10, 11, 12, 13]
    assert [r["extra"] for r in rows] == [1.5, 2.5, 3.5, 4.5]  # other columns kept
    assert set(OUTPUT_COLUMNS) <= set(table.column_names)
    ok, boom, none, d = rows
    assert (ok["answer"], ok["outcome"], ok["error"], ok["attempts"]) == ("A", "ok", None, 1)
    assert boom["outcome"] == "failed" and boom["answer"] is None and "no answer to boom 1" in boom["error"]
    assert boom["attempts"] == 1
    # pandas may hold the missing question as NaN
    assert none["outcome"] == "failed" and none["attempts"] == 0
    assert none["error"] in ("text: expected str, got NoneType", "text: expected str, got float")
    assert d["answer"] == "D"

    only = Answerer(lambda: flaky, id_column="key", question_column="text", keep_columns=False)(batch)
    assert set(as_table(only, fmt).column_names) == {"key", *OUTPUT_COLUMNS}


def test_a_batch_that_fails_as_a_whole_is_rows_with_the_error():
    pa = need("pyarrow")
    from parallel_agents.ray import Answerer

    ans = Answerer(lambda: flaky)
    ans.executor.close()  # every later run raises parallel_agents.Error
    rows = ans(pa.table({"id": ["x", "y"], "question": ["q1", "q2"]})).to_pylist()
    assert [r["id"] for r in rows] == ["x", "y"]
    assert all(r["outcome"] == "failed" and "closed" in r["error"] for r in rows)


def test_bad_arguments_are_reported_at_construction():
    from parallel_agents.ray import Answerer

    with pytest.raises(TypeError, match="agent"):
        Answerer(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ"):
        Answerer(lambda: flaky, id_column="q", question_column="q")
    with pytest.raises(ValueError, match="output column"):
        Answerer(lambda: flaky, question_column="answer")
    with pytest.raises(TypeError, match="rate_limiter"):
        Answerer(lambda: flaky, rate_limiter=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword"):
        Answerer({"base_url": "http://127.0.0.1:1/v1", "no_such_option": 1})


# -- 20,000 questions on a 2-node cluster ---------------------------------------------

N = 20_000
#: Rows per input block, and per batch: one block makes one task of one batch.
BATCH = 500
ACTORS = 2
#: Batches (Ray tasks) one actor runs at once, sharing its executor.
TASKS_PER_ACTOR = 2
MAX_CONCURRENCY = 64
RETRIES = 2
#: The module's Ray tests, cluster start and stop included, must end within this.
TIME_LIMIT = 240


class PidAgent:
    """The agent factory each actor runs: records the actor's pid in ``pid_dir`` (so the
    test can kill one), then builds the OpenAIAgent."""

    def __init__(self, url: str, pid_dir: str) -> None:
        self.url = url
        self.pid_dir = pid_dir

    def __call__(self) -> OpenAIAgent:
        pathlib.Path(self.pid_dir, str(os.getpid())).write_text(str(time.time()))
        return OpenAIAgent(base_url=self.url, model="mock", api_key_env="")


def requests_seen(server: MockLLM) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stats?log=0") as r:
        return json.load(r)["requests"]


class Deadline:
    """Fails the test (TimeoutError in the main thread) after ``seconds``; if even that
    does not return, dumps every thread's stack and exits the process."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> "Deadline":
        def expired(signum: int, frame: Any) -> None:
            raise TimeoutError(f"the Ray test ran past {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)
        faulthandler.dump_traceback_later(self.seconds + 60, exit=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, self.previous)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 nodes (head + 1 worker), connected; shut down after the
    module's tests."""
    with pytest.MonkeyPatch.context() as monkeypatch, Deadline(TIME_LIMIT):
        yield from _cluster(monkeypatch)


def _cluster(monkeypatch: pytest.MonkeyPatch) -> Any:
    ray = need("ray")
    need("ray.data")
    from ray.cluster_utils import Cluster

    # 4 logical CPUs on the 2 cores: the mappers take 0.5 each, a checkpoint filter
    # actor 1 and read tasks 1 each.
    small = {"num_cpus": 2, "object_store_memory": 200 * 1024 * 1024}
    # Ray's files go under RAY_TMPDIR (not /tmp/ray, which another run may hold); a short
    # path, since its sockets live there (a Unix socket's path is <= 107 bytes).
    temp = tempfile.mkdtemp(prefix="pa-ray-")
    monkeypatch.setenv("RAY_TMPDIR", temp)
    c = None
    try:
        c = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
        c.add_node(**small)
        c.wait_for_nodes()
        # The workers import PidAgent from this module.
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)}
        ray.init(
            address=c.address,
            runtime_env={"env_vars": env},
            logging_level="warning",
            log_to_driver=False,
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield c
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


class RedisLimiter:
    """The rate limiter factory each actor runs: one RateLimiter kept in Redis, so every
    actor on every node draws on the same budget."""

    def __init__(self, url: str, key: str, requests_per_minute: float) -> None:
        self.url, self.key, self.requests_per_minute = url, key, requests_per_minute

    def __call__(self) -> Any:
        from parallel_agents import RateLimiter

        return RateLimiter.redis(self.url, self.key, self.requests_per_minute)


#: The shared budget of the Redis run, far below what the 2 actors reach without one
#: (~4,000 starts/s here), so that it binds: 20,000 starts take at least 25 s.
BUDGET_PER_SECOND = 800


@pytest.mark.parametrize("budget", [None, "redis"])
def test_twenty_thousand_questions_on_two_nodes_with_an_actor_killed(cluster, tmp_path, request, budget):
    import ray

    from parallel_agents.ray import Answerer

    limiter = None
    if budget == "redis":
        redis = request.getfixturevalue("redis_server")
        limiter = RedisLimiter(redis.url, f"ray-{time.time_ns()}", BUDGET_PER_SECOND * 60)
    server = MockLLM(latency_ms=20)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed: Dict[str, Any] = {}
    stop = threading.Event()

    def kill_one_actor() -> None:
        # Once the server has seen a sixth of the calls, SIGKILL one live actor.
        while not stop.is_set():
            seen = requests_seen(server)
            live = [int(p.name) for p in pid_dir.iterdir() if _alive(int(p.name))]
            if seen >= 3_000 and live:
                os.kill(live[0], signal.SIGKILL)
                killed.update(pid=live[0], requests=seen, at=time.monotonic())
                return
            time.sleep(0.01)

    started = time.monotonic()
    try:
        ds = ray.data.from_items(
            [{"id": i, "question": f"question {i}"} for i in range(N)], override_num_blocks=N // BATCH
        )
        out = ds.map_batches(
            Answerer,
            fn_constructor_args=(PidAgent(server.url, str(pid_dir)),),
            fn_constructor_kwargs={
                "executor": {"max_concurrency": MAX_CONCURRENCY, "timeout": 30, "retries": RETRIES, "backoff": 0.05},
                "rate_limiter": limiter,
            },
            batch_size=BATCH,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(
                size=ACTORS,
                max_concurrent_calls_per_actor=TASKS_PER_ACTOR,
                enable_true_multi_threading=True,
            ),
            num_cpus=0.5,  # the actors wait on the network; leave CPU to the rest
            udf_modifying_row_count=False,
        )
        killer = threading.Thread(target=kill_one_actor, daemon=True)
        killer.start()
        cols: Dict[str, List[Any]] = collections.defaultdict(list)
        for b in out.iter_batches(batch_format="pyarrow", batch_size=None):
            for name in ("id", "question", "answer", "outcome", "error", "attempts"):
                cols[name].extend(b.column(name).to_pylist())
        elapsed = time.monotonic() - started
        stop.set()
        killer.join()
        stats = server.stats()  # with the log of every request's start
        seen = stats["requests"]
    finally:
        stop.set()
        server.stop()

    pids = sorted(int(p.name) for p in pid_dir.iterdir())
    starts = sorted(e["t_us"] for e in stats["log"])
    span = (starts[-1] - starts[0]) / 1e6
    # The most starts in any 1 s window.
    busiest = max(bisect.bisect_left(starts, t + 1_000_000) - i for i, t in enumerate(starts))
    print(
        f"\n{N} questions on {ACTORS} actors over 2 nodes in {elapsed:.1f} s ({budget or 'no'} budget); "
        f"server saw {seen} requests, {(seen - 1) / span:.0f}/s, busiest 1 s {busiest}, "
        f"at most {stats['max_in_flight']} at once; "
        f"killed actor {killed.get('pid')} at {killed.get('requests')} requests; actor pids {pids}"
    )
    assert killed, "no actor was killed"
    assert len(pids) > ACTORS, "Ray Data did not restart the killed actor"

    # Every id exactly once, every row answered.
    assert collections.Counter(cols["id"]) == collections.Counter(range(N))
    bad = [(i, o, e) for i, o, e in zip(cols["id"], cols["outcome"], cols["error"]) if o != "ok" or e is not None]
    assert not bad, bad[:3]
    assert all(a == f"mock answer to: {q}" for a, q in zip(cols["answer"], cols["question"]))
    assert all(q == f"question {i}" for i, q in zip(cols["id"], cols["question"]))

    # What the server may have seen: one request per id, plus the retries the output
    # reports, plus the calls lost with the killed actor. Ray Data reruns a dead actor's
    # tasks whole, so every row of a task it was running is asked again, answered or
    # not. A task is one input block (BATCH rows, as from_items made them, so one
    # batch); the actor ran at most TASKS_PER_ACTOR at once (max_concurrent_calls_per_actor;
    # tasks queued behind them had not started); and a lost row's own attempts are not
    # in the output, so each counts up to 1 + RETRIES requests.
    # The batches an actor runs at once share its one executor, so at most
    # MAX_CONCURRENCY calls per actor (not per batch) reach the server; one more actor's
    # worth while the killed one's last calls still sleep on the server.
    assert stats["max_in_flight"] <= (ACTORS + 1) * MAX_CONCURRENCY, stats["max_in_flight"]

    retries = sum(a - 1 for a in cols["attempts"])
    lost = TASKS_PER_ACTOR * BATCH * (1 + RETRIES)
    assert N <= seen <= N + retries + lost, (seen, retries, lost)

    if budget == "redis":
        # Every actor took its starts from one budget in Redis: in all and in every 1 s
        # window at most the limit (5 % for timing), plus one lease (0.2 s of budget)
        # granted ahead of its time.
        lease = BUDGET_PER_SECOND * 0.2
        assert seen <= BUDGET_PER_SECOND * span * 1.05 + lease, f"{(seen - 1) / span:.0f}/s"
        assert busiest <= BUDGET_PER_SECOND * 1.05 + lease, f"{busiest} starts in one second"
        # And used, not just respected (the restarted actor's gap included).
        assert (seen - 1) / span >= BUDGET_PER_SECOND * 0.8, f"{(seen - 1) / span:.0f}/s"


def test_a_rerun_with_ray_checkpointing_skips_the_ids_already_written(cluster, tmp_path):
    import pyarrow.parquet as pq
    import ray
    from ray.data.checkpoint import CheckpointConfig

    from parallel_agents.ray import Answerer

    server = MockLLM(latency_ms=1)
    for n in (1_000, 3_000):
        with open(tmp_path / f"q{n}.jsonl", "w") as f:
            f.writelines(json.dumps({"id": i, "question": f"question {i}"}) + "\n" for i in range(n))
    ctx = ray.data.DataContext.get_current()
    # Checkpointing applies to a pipeline from a read to a write; the write records the
    # ids it wrote, and a later read drops them.
    ctx.checkpoint_config = CheckpointConfig(
        id_column="id", checkpoint_path=str(tmp_path / "checkpoint"), delete_checkpoint_on_success=False
    )
    asked, rows = {}, {}
    try:
        for n in (1_000, 3_000):  # the second run: the first one's ids plus 2,000 new
            before = requests_seen(server)
            ray.data.read_json(str(tmp_path / f"q{n}.jsonl")).map_batches(
                Answerer,
                fn_constructor_kwargs={
                    "agent": {"base_url": server.url, "model": "mock", "api_key_env": ""},
                    "executor": {"max_concurrency": 32},
                },
                batch_size=250,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=1),
                num_cpus=0.5,
                udf_modifying_row_count=False,
            ).write_parquet(str(tmp_path / f"out{n}"))
            asked[n] = requests_seen(server) - before
            rows[n] = sorted(pq.read_table(tmp_path / f"out{n}").to_pylist(), key=lambda r: r["id"])
    finally:
        ctx.checkpoint_config = None
        server.stop()
    assert [r["id"] for r in rows[1_000]] == list(range(1_000)) and asked[1_000] == 1_000
    assert [r["id"] for r in rows[3_000]] == list(range(1_000, 3_000)) and asked[3_000] == 2_000
    assert all(r["outcome"] == "ok" and r["answer"] == f"mock answer to: {r['question']}" for r in rows[3_000])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
