"""Shared by the peer scripts of the bench runner (`cargo run --release -p bench`).

Each peer runs the runner's workloads its own way and prints one `key=value ...` line per
measurement, in the runner's format:

    bench=latency_sweep impl=asyncio n=32 c=8 latency_ms=100 reps=3 measured_s=0.41 ...
    bench=overhead impl=asyncio n=100000 c=1000 reps=3 measured_s=0.93 calls_per_s=107000

A wrong result (lost, duplicated or wrong answers) prints to stderr and exits 1.
"""

import argparse
import math
import statistics
import sys


def answer(i, question):
    """The mock agent's template answer, as the Rust mock writes it."""
    return f"Agent {i} answer for '{question}'"


def questions(n):
    return [f"q{i}" for i in range(n)]


def pairs(text):
    """'32:2,32:4' -> [(32, 2), (32, 4)]; '' -> []."""
    out = []
    for item in filter(None, text.split(",")):
        a, b = item.split(":")
        out.append((int(a), int(b)))
    return out


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--latency-ms", type=float, default=100.0, help="agent latency (latency runs)")
    p.add_argument("--sweep", type=pairs, default=[], help="latency-bound runs, N:C,N:C,...")
    p.add_argument("--overhead", type=pairs, default=[], help="zero-latency runs, N:C,...")
    p.add_argument("--reps", type=int, default=1, help="repetitions; the median is reported")
    return p


def check(results, qs):
    """`results` is a list of (index, answer); each index exactly once, answers right."""
    n = len(qs)
    if len(results) != n:
        fail(f"{len(results)} results for {n} questions")
    seen = bytearray(n)
    for i, a in results:
        if not 0 <= i < n or seen[i]:
            fail(f"index {i} out of range or delivered twice")
        seen[i] = 1
        if a != answer(i, qs[i]):
            fail(f"call {i} answered {a!r}")


def fail(msg):
    print(f"wrong result: {msg}", file=sys.stderr)
    sys.exit(1)


def emit(**fields):
    print(" ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def latency_line(impl, n, c, latency_ms, times):
    med = statistics.median(times)
    ideal = math.ceil(n / c) * latency_ms / 1000.0
    emit(bench="latency_sweep", impl=impl, n=n, c=c, latency_ms=f"{latency_ms:g}",
         reps=len(times), measured_s=f"{med:.6f}", min_s=f"{min(times):.6f}",
         ideal_s=f"{ideal:.6f}", ratio=f"{ideal / med:.4f}")


def overhead_line(impl, n, c, times):
    med = statistics.median(times)
    emit(bench="overhead", impl=impl, n=n, c=c, reps=len(times), measured_s=f"{med:.6f}",
         min_s=f"{min(times):.6f}", calls_per_s=f"{n / med:.0f}")


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
