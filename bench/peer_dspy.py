#!/usr/bin/env python3
"""DSPy peer: dspy.utils.parallelizer.ParallelExecutor(num_threads=C), the executor behind
dspy.Evaluate and Module.batch; the agent is `time.sleep(latency)` (nothing at zero
latency) and the template answer. Exits 3 if dspy cannot be imported. See
peer_common.py for the output format."""

import sys
import time

from peer_common import answer, check, latency_line, overhead_line, parser, questions

try:
    from dspy.utils.parallelizer import ParallelExecutor
except Exception as e:  # noqa: BLE001 - any import failure means "no dspy here"
    print(f"dspy not importable: {e}", file=sys.stderr)
    sys.exit(3)


def batch(qs, c, latency_s):
    def call(item):
        i, q = item
        if latency_s > 0:
            time.sleep(latency_s)
        return i, answer(i, q)

    data = list(enumerate(qs))
    t0 = time.perf_counter()
    results = ParallelExecutor(num_threads=c, disable_progress_bar=True).execute(call, data)
    dt = time.perf_counter() - t0
    check(results, qs)
    return dt


def main():
    a = parser(__doc__).parse_args()
    for n, c in a.sweep:
        qs = questions(n)
        times = [batch(qs, c, a.latency_ms / 1000.0) for _ in range(a.reps)]
        latency_line("dspy", n, c, a.latency_ms, times)
    for n, c in a.overhead:
        qs = questions(n)
        batch(qs[: min(n, 1000)], c, 0)  # warm-up
        times = [batch(qs, c, 0) for _ in range(a.reps)]
        overhead_line("dspy", n, c, times)


if __name__ == "__main__":
    main()
