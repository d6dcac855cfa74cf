#!/usr/bin/env python3
"""asyncio peer: one task per question (asyncio.gather), bounded by an asyncio.Semaphore;
the agent is `await asyncio.sleep(latency)` (nothing at zero latency) and the template
answer. Also measures memory per in-flight task (--memory N:LATENCY_MS). See
peer_common.py for the output format."""

import asyncio
import time

from peer_common import (answer, check, emit, latency_line, overhead_line, parser,
                         questions, rss_bytes)


async def batch(qs, c, latency_s):
    sem = asyncio.Semaphore(c)

    async def call(i):
        async with sem:
            if latency_s > 0:
                await asyncio.sleep(latency_s)
            return i, answer(i, qs[i])

    t0 = time.perf_counter()
    results = await asyncio.gather(*(call(i) for i in range(len(qs))))
    dt = time.perf_counter() - t0
    check(results, qs)
    return dt


async def memory(n, latency_s):
    qs = questions(n)
    started = finished = 0
    await batch(questions(1000), 1000, 0)  # warm-up

    async def call(i):
        nonlocal started, finished
        started += 1
        await asyncio.sleep(latency_s)
        finished += 1
        return i, answer(i, qs[i])

    before = rss_bytes()
    all_calls = asyncio.gather(*(call(i) for i in range(n)))
    while started < n:
        await asyncio.sleep(0.005)
    during = rss_bytes()
    if finished:
        raise SystemExit("memory probe: calls finished before all had started; raise the latency")
    check(await all_calls, qs)
    emit(bench="memory", impl="asyncio", n=n, latency_ms=f"{latency_s * 1000:g}",
         rss_before_kb=before // 1024, rss_during_kb=during // 1024,
         bytes_per_call=f"{(during - before) / n:.0f}")


def main():
    p = parser(__doc__)
    p.add_argument("--memory", default="", help="N:LATENCY_MS in-flight memory probe")
    a = p.parse_args()
    for n, c in a.sweep:
        qs = questions(n)
        times = [asyncio.run(batch(qs, c, a.latency_ms / 1000.0)) for _ in range(a.reps)]
        latency_line("asyncio", n, c, a.latency_ms, times)
    for n, c in a.overhead:
        qs = questions(n)
        asyncio.run(batch(qs[: min(n, 10000)], c, 0))  # warm-up
        times = [asyncio.run(batch(qs, c, 0)) for _ in range(a.reps)]
        overhead_line("asyncio", n, c, times)
    if a.memory:
        n, ms = (int(x) for x in a.memory.split(":"))
        asyncio.run(memory(n, ms / 1000.0))


if __name__ == "__main__":
    main()
