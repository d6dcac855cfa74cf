#!/usr/bin/env python3
"""Thread-pool peer: concurrent.futures.ThreadPoolExecutor(max_workers=C), one future per
question; the agent is `time.sleep(latency)` (nothing at zero latency) and the template
answer. See peer_common.py for the output format."""

import time
from concurrent.futures import ThreadPoolExecutor

from peer_common import answer, check, latency_line, overhead_line, parser, questions


def batch(qs, c, latency_s):
    def call(i):
        if latency_s > 0:
            time.sleep(latency_s)
        return i, answer(i, qs[i])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=c) as pool:
        futures = [pool.submit(call, i) for i in range(len(qs))]
        results = [f.result() for f in futures]
    dt = time.perf_counter() - t0
    check(results, qs)
    return dt


def main():
    a = parser(__doc__).parse_args()
    for n, c in a.sweep:
        qs = questions(n)
        times = [batch(qs, c, a.latency_ms / 1000.0) for _ in range(a.reps)]
        latency_line("threads", n, c, a.latency_ms, times)
    for n, c in a.overhead:
        qs = questions(n)
        batch(qs[: min(n, 10000)], c, 0)  # warm-up
        times = [batch(qs, c, 0) for _ in range(a.reps)]
        overhead_line("threads", n, c, times)


if __name__ == "__main__":
    main()
