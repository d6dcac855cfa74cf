"""Python agents for tests/python_agent.rs (loaded in-process by parallel_agents)."""

import asyncio
import threading
import time

# What the timeout tests look at: calls that Python saw cancelled or finish late.
CANCELLED = []
SLOW_SYNC_FINISHED = []
_lock = threading.Lock()


def echo(question, agent_id):
    """A plain sync function."""
    return "echo %d: %s" % (agent_id, question)


async def aecho(question, agent_id):
    """An async def function."""
    await asyncio.sleep(0)
    return "aecho %d: %s" % (agent_id, question)


class Answer:
    def __init__(self, answer, other="ignored"):
        self.answer = answer
        self.other = other


def with_answer(question, agent_id):
    """An object with an .answer field (like a DSPy Prediction)."""
    return Answer("object says " + question)


async def awith_answer(question, agent_id):
    return Answer("async object says " + question)


def as_dict(question, agent_id):
    return {"answer": question.upper(), "confidence": 0.5}


def custom_field(question, agent_id):
    return Answer("not this", other="custom " + question)


def number(question, agent_id):
    return agent_id * 2


def returns_none(question, agent_id):
    return None


def returns_coroutine(question, agent_id):
    """A sync function handing back an awaitable: finished on the event loop."""
    return aecho(question, agent_id)


class AgentFailure(Exception):
    pass


def boom(question, agent_id):
    raise ValueError("bad question %r" % question)


async def aboom(question, agent_id):
    await asyncio.sleep(0.001)
    raise AgentFailure("async failure for agent %d" % agent_id)


def flaky_connection(question, agent_id):
    raise ConnectionError("upstream reset")


def slow_sync(question, agent_id):
    time.sleep(float(question))
    with _lock:
        SLOW_SYNC_FINISHED.append(agent_id)
    return "finished"


async def slow_async(question, agent_id):
    try:
        await asyncio.sleep(float(question))
    except asyncio.CancelledError:
        CANCELLED.append(agent_id)
        raise
    return "finished"


def cancelled_count(question, agent_id):
    return str(len(CANCELLED))


def slow_sync_finished_count(question, agent_id):
    with _lock:
        return str(len(SLOW_SYNC_FINISHED))


def io_sync(question, agent_id):
    """I/O-bound: 100 ms of waiting, GIL released."""
    time.sleep(0.1)
    return question


async def io_async(question, agent_id):
    await asyncio.sleep(0.1)
    return question


class Echo:
    """A factory product called with question=..."""

    def __init__(self):
        self.prefix = "made"

    def __call__(self, question):
        return "%s: %s" % (self.prefix, question)


def make_echo():
    return Echo()


def broken_factory():
    raise RuntimeError("factory cannot build")


class AsyncCallable:
    async def __call__(self, question, agent_id):
        return "async callable %d" % agent_id


async_callable = AsyncCallable()

NOT_CALLABLE = 42


def asyncio_baseline(question, agent_id):
    """The same I/O-bound workload in plain asyncio at its cheapest, on a fresh loop in this
    thread: `in_flight` worker coroutines each await `io_async` in turn until `n` calls are
    done (no task per call, no semaphore). `question` is "n in_flight latency_s"; returns
    ideal / measured wall time, the ceiling asyncio itself sets on this machine."""
    n, in_flight, latency = question.split()
    n, in_flight, latency = int(n), int(in_flight), float(latency)

    async def main():
        counter = iter(range(n))

        async def worker():
            for i in counter:
                await io_async(str(i), i)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - start

    measured = asyncio.run(main())
    ideal = -(-n // in_flight) * latency
    return "%.3f" % (ideal / measured)


# How many io_sync_counted calls run at once (under _lock).
_running = 0
_peak_running = 0


def io_sync_counted(question, agent_id):
    """io_sync, recording the most calls seen running at once (see take_peak_running)."""
    global _running, _peak_running
    with _lock:
        _running += 1
        _peak_running = max(_peak_running, _running)
    try:
        time.sleep(0.1)
    finally:
        with _lock:
            _running -= 1
    return question


def take_peak_running(question, agent_id):
    """The most io_sync_counted calls seen running at once since the last take; resets it."""
    global _peak_running
    with _lock:
        peak, _peak_running = _peak_running, 0
    return str(peak)
