"""The Executor's paths: run, arun, stream, astream, consensus, metrics, progress,
cancellation (asyncio and Ctrl-C), agents that raise, and bad arguments."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

import parallel_agents as pa
from parallel_agents import CallableAgent, Executor, MockAgent


def questions(n: int) -> list:
    return [f"question {i}" for i in range(n)]


def mock_answer(i: int, q: str) -> str:
    return f"Agent {i} answer for '{q}'"


def test_run_returns_every_question_in_question_order():
    qs = questions(200)
    with Executor(max_concurrency=50, timeout=5) as ex:
        rs = ex.run(MockAgent(latency=0.01, jitter=0.005), qs)
    assert [r.index for r in rs] == list(range(200))
    assert [r.answer for r in rs] == [mock_answer(i, q) for i, q in enumerate(qs)]
    assert all(r.ok and r.outcome == "ok" and r.attempts == 1 and r.error is None for r in rs)
    m = ex.last_metrics
    assert isinstance(m, pa.Metrics)
    assert (m.total_count, m.successful_count, m.failed_count) == (200, 200, 0)
    d = m.to_dict()
    assert d["total_count"] == 200 and d["p50_duration"] > 0
    assert rs[0].to_dict()["answer"] == rs[0].answer


def test_stream_yields_each_question_once_in_completion_order():
    # Later questions are faster: completion order is not question order.
    latencies = {f"q{i}": 0.5 - 0.05 * i for i in range(10)}

    async def agent(q: str) -> str:
        await asyncio.sleep(latencies[q])
        return q

    with Executor(max_concurrency=10) as ex:
        rs = list(ex.stream(agent, list(latencies)))
    assert sorted(r.index for r in rs) == list(range(10))
    assert all(r.answer == r.question for r in rs)
    durations = [r.duration for r in rs]
    assert durations == sorted(durations)  # each finished after the one before
    assert ex.last_metrics is not None and ex.last_metrics.total_count == 10


def test_arun_and_astream():
    async def main():
        with Executor(max_concurrency=100) as ex:
            agent = MockAgent(latency=0.02)
            rs = await ex.arun(agent, questions(300))
            streamed = [r async for r in ex.astream(agent, questions(300))]
            return rs, streamed

    rs, streamed = asyncio.run(main())
    assert [r.index for r in rs] == list(range(300)) and all(r.ok for r in rs)
    assert sorted(r.index for r in streamed) == list(range(300))
    assert all(r.answer == mock_answer(r.index, r.question) for r in streamed)


def test_empty_batches():
    with Executor() as ex:
        assert ex.run(MockAgent(), []) == []
        assert list(ex.stream(MockAgent(), [])) == []


def test_consensus_sync_and_async():
    agent = MockAgent(latency=0.01, votes={"Paris": 0.9, "Lyon": 0.1})
    with Executor(max_concurrency=8, consensus_threshold=0.5, consensus_early_stop=False) as ex:
        c = ex.consensus(agent, "What is the capital of France?", 7)
        c2 = asyncio.run(ex.aconsensus(agent, "What is the capital of France?", 7))
    for x in (c, c2):
        assert isinstance(x, pa.Consensus)
        assert len(x.results) == 7 and x.counted == 7
        assert x.votes == dict(x.tally)[x.answer.lower()]
        assert x.confidence == pytest.approx(x.votes / 7)
        assert x.reached == (x.confidence >= 0.5)
    assert c.answer == c2.answer  # seeded: the same draws


def test_sync_callable_agent_and_dict_and_prediction_answers():
    class Prediction:
        def __init__(self, answer):
            self.answer = answer

    with Executor(max_concurrency=4) as ex:
        assert [r.answer for r in ex.run(str.upper, ["a", "b"])] == ["A", "B"]
        assert [r.answer for r in ex.run(lambda q: {"answer": q * 2}, ["x"])] == ["xx"]
        assert [r.answer for r in ex.run(lambda q: Prediction(len(q)), ["abc"])] == ["3"]
        r = ex.run(CallableAgent(lambda text: text[::-1], input_field="text"), ["abc"])[0]
        assert r.answer == "cba"


def test_an_agent_that_raises_fails_its_call_only():
    def agent(q: str) -> str:
        if q.endswith("3"):
            raise KeyError("no such thing")
        return q

    async def aagent(q: str) -> str:
        if q.endswith("3"):
            raise ValueError("bad question")
        return q

    with Executor(max_concurrency=8) as ex:
        for a, name in ((agent, "KeyError"), (aagent, "ValueError")):
            rs = ex.run(a, questions(10))
            assert [r.outcome for r in rs].count("failed") == 1
            bad = rs[3]
            assert bad.outcome == "failed" and bad.answer is None
            assert bad.error.startswith(name) and "test_executor.py" in bad.error
            assert all(r.ok for r in rs if r.index != 3)
        # A return value that is no answer is a failure too, not a crash.
        r = ex.run(lambda q: object(), ["q"])[0]
        assert r.outcome == "failed" and "expected a str" in r.error


def test_retryable_errors_are_retried():
    seen = {}
    lock = threading.Lock()

    def flaky(q: str) -> str:
        with lock:
            seen[q] = seen.get(q, 0) + 1
            n = seen[q]
        if n == 1:
            raise ConnectionError("reset by peer")
        return q

    with Executor(max_concurrency=4, retries=2, backoff=0.001, backoff_cap=0.01) as ex:
        rs = ex.run(flaky, questions(5))
    assert all(r.ok and r.attempts == 2 for r in rs)


def test_timeout_cancels_the_asyncio_task():
    cancelled = threading.Event()

    async def slow(q: str) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return q

    with Executor(timeout=0.05) as ex:
        r = ex.run(slow, ["q"])[0]
    assert r.outcome == "timed_out"
    assert cancelled.wait(5)


def test_asyncio_cancellation_cancels_the_batch():
    agent = MockAgent(latency=30)

    async def main():
        with Executor(max_concurrency=10, timeout=60) as ex:
            task = asyncio.ensure_future(ex.arun(agent, questions(50)))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            return info.value

    exc = asyncio.run(main())
    rs = exc.results
    assert sorted(r.index for r in rs) == list(range(50))
    assert all(r.outcome == "cancelled" for r in rs)


def test_leaving_a_stream_early_cancels_the_rest():
    async def agent(q: str) -> str:
        await asyncio.sleep(0.01 if q == "question 0" else 30)
        return q

    with Executor(max_concurrency=20, timeout=60) as ex:
        stream = ex.stream(agent, questions(20))
        first = next(stream)
        stream.close()
        assert first.index == 0
        # The agent's executor is free again: nothing of the old batch still runs.
        native = ex._native_for(agent)
        for _ in range(200):
            if native.in_flight == 0:
                break
            time.sleep(0.01)
        assert native.in_flight == 0


def test_keyboard_interrupt_cancels_the_batch_and_returns_every_question():
    agent = MockAgent(latency=30)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    with Executor(max_concurrency=10, timeout=60) as ex:
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt) as info:
                ex.run(agent, questions(100))
        finally:
            timer.cancel()
    rs = info.value.results
    assert sorted(r.index for r in rs) == list(range(100))
    assert all(r.outcome == "cancelled" for r in rs)


def test_keyboard_interrupt_during_consensus():
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    with Executor(max_concurrency=4, timeout=60) as ex:
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                ex.consensus(MockAgent(latency=30), "q", 5)
        finally:
            timer.cancel()


def test_max_errors_cancels_the_rest():
    def agent(q: str) -> str:
        raise RuntimeError("down")

    with Executor(max_concurrency=1, max_errors=2) as ex:
        rs = ex.run(agent, questions(20))
    outcomes = [r.outcome for r in rs]
    assert outcomes.count("failed") == 3
    assert outcomes.count("cancelled") == 17


def test_progress_callback_and_tqdm_like_object():
    calls = []

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    with Executor(max_concurrency=10) as ex:
        ex.run(MockAgent(latency=0.02), questions(100), progress=lambda d, t: calls.append((d, t)))
        list(ex.stream(MockAgent(latency=0.02), questions(100), progress=bar))
    assert calls and calls[-1] == (100, 100)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert bar.n == 100


def test_metrics_over_the_executors_lifetime():
    agent = MockAgent(latency=0.001)
    with Executor() as ex:
        assert ex.metrics() is None
        ex.run(agent, questions(10))
        ex.run(agent, questions(5))
        assert ex.metrics().total_count == 15
        assert ex.metrics(agent).successful_count == 15


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"max_concurrency": -5}, ValueError, "max_concurrency"),
        ({"max_concurrency": "8"}, TypeError, "max_concurrency"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "1s"}, TypeError, "timeout"),
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1000}, ValueError, "retries"),
        ({"rate_limit": -1.0}, ValueError, "rate_limit"),
        ({"rate_limit": 10.0, "rate_burst": 0}, ValueError, "rate_burst"),
        ({"tokens_per_minute": 0}, ValueError, "tokens_per_minute"),
        ({"hedge": -0.5}, ValueError, "hedge"),
        ({"consensus_threshold": 1.5}, ValueError, "consensus_threshold"),
        ({"max_errors": -1}, ValueError, "max_errors"),
        ({"stream_buffer": 0}, ValueError, "stream_buffer"),
        ({"backoff": 2.0, "backoff_cap": 1.0}, ValueError, "backoff_cap"),
        ({"max_concurrency": 10**30}, ValueError, "max_concurrency"),
    ],
)
def test_bad_executor_arguments_name_the_argument(kwargs, exc, name):
    with pytest.raises(exc) as info:
        Executor(**kwargs)
    assert name in str(info.value)
    if exc is ValueError:
        assert info.value.status == "invalid_argument"


def test_bad_call_arguments():
    with Executor() as ex:
        with pytest.raises(TypeError, match="questions"):
            ex.run(MockAgent(), "one string")
        with pytest.raises(TypeError, match=r"questions\[1\]"):
            ex.run(MockAgent(), ["ok", 2])
        with pytest.raises(TypeError, match="questions"):
            ex.run(MockAgent(), 42)
        with pytest.raises(TypeError, match="agent"):
            ex.run(42, ["q"])
        with pytest.raises(TypeError, match="progress"):
            ex.run(MockAgent(latency=0), ["q"], progress=3)
        with pytest.raises(ValueError, match="n"):
            ex.consensus(MockAgent(), "q", 0)
        with pytest.raises(TypeError, match="question"):
            ex.consensus(MockAgent(), 5, 3)
        with pytest.raises(ValueError, match="tokens_per_minute"):
            Executor(tokens_per_minute=100).run(MockAgent(), ["q"])
    with pytest.raises(ValueError, match="failure_rate"):
        MockAgent(failure_rate=2)
    with pytest.raises(ValueError, match="latency"):
        MockAgent(latency=-1)
    with pytest.raises(ValueError, match="seed"):
        MockAgent(seed=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        pa.OpenAIAgent(max_tokens=-1)
    with pytest.raises(TypeError, match="fn"):
        CallableAgent(3)
    with pytest.raises(ValueError, match="max_threads"):
        CallableAgent(str.upper, max_threads=0)
    with pytest.raises(ValueError, match="base_url"):
        pa.OpenAIAgent(base_url="ftp://example.com")
    with pytest.raises(TypeError, match="temperature"):
        pa.OpenAIAgent(temperature="hot")


def test_a_closed_executor_refuses_work():
    ex = Executor()
    ex.close()
    with pytest.raises(pa.Error) as info:
        ex.run(MockAgent(), ["q"])
    assert info.value.status == "closed"


def test_the_gil_is_released_while_waiting():
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.005)

    t = threading.Thread(target=ticker)
    with Executor(max_concurrency=10) as ex:
        t.start()
        try:
            before = len(ticks)
            ex.run(MockAgent(latency=0.3), questions(10))
            during = len(ticks) - before
        finally:
            stop.set()
            t.join()
    assert during > 5  # the other thread ran while run() waited


def test_cancelling_an_astream_consumer_cancels_the_batch():
    agent = MockAgent(latency=30)

    async def main():
        with Executor(max_concurrency=10, timeout=60) as ex:
            native = ex._native_for(agent)

            async def consume():
                return [r async for r in ex.astream(agent, questions(10))]

            task = asyncio.ensure_future(consume())
            for _ in range(500):
                if native.in_flight == 10:
                    break
                await asyncio.sleep(0.01)
            assert native.in_flight == 10
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(200):
                if native.in_flight == 0:
                    break
                await asyncio.sleep(0.01)
            return native.in_flight

    assert asyncio.run(main()) == 0


def test_arun_with_progress():
    seen = []
    with Executor(max_concurrency=20) as ex:
        rs = asyncio.run(ex.arun(MockAgent(latency=0.02), questions(100), progress=lambda d, t: seen.append(d)))
    assert len(rs) == 100 and seen[-1] == 100


def test_a_journal_replays_a_rerun_without_calling_the_agent(tmp_path):
    import pytest

    import parallel_agents as pa

    calls = []

    def agent(question):
        calls.append(question)
        return question.upper()

    qs = [f"q{i}" for i in range(50)]
    ids = [f"row-{i}" for i in range(50)]
    path = tmp_path / "run.journal"
    with pa.Executor(max_concurrency=8, journal=path) as ex:
        first = ex.run(agent, qs, ids=ids)
    assert [r.id for r in first] == ids and not any(r.replayed for r in first)
    assert len(calls) == 50
    with pa.Executor(max_concurrency=8, journal=path) as ex:
        again = ex.run(agent, qs + ["q50"], ids=ids + ["row-50"])
    assert len(calls) == 51  # only the new question ran
    assert [r.replayed for r in again] == [True] * 50 + [False]
    assert [r.answer for r in again] == [q.upper() for q in qs + ["q50"]]
    with pa.Executor() as ex:
        with pytest.raises(ValueError, match="row-1"):
            ex.run(agent, ["a", "b"], ids=["row-1", "row-1"])
        with pytest.raises(ValueError, match="ids"):
            ex.run(agent, ["a", "b"], ids=["only-one"])
        assert [r.id for r in ex.run(agent, ["a", "b"])] == ["0", "1"]
