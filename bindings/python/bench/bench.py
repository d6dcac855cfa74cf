"""Benchmark of the Python package, from Python, in one run (figures printed, not asserted).

    .venv/bin/python bindings/python/bench/bench.py [--n 10000] [--c 1000] [--latency-ms 100]
        [--reps 3] [--peer-n N] [--dspy-n 1000] [--dspy-threads 16] [--only ours,openai,litellm,aiohttp,dspy]

Part 1: N chat completions at C in flight against our mock-llm (started here, on
127.0.0.1, with the given latency; tools/mock-llm, built by cargo):

- ours:    parallel_agents.Executor(max_concurrency=C).run(OpenAIAgent(...), questions)
- openai:  AsyncOpenAI (httpx pool of C connections, no retries), one task per call
           behind asyncio.Semaphore(C), asyncio.gather
- litellm: litellm.acompletion behind asyncio.Semaphore(C), asyncio.gather
- aiohttp: raw aiohttp POSTs (one session, C connections) behind asyncio.Semaphore(C)

Each starts with a warm-up of C calls (connections opened), then one timed run (ours:
--reps runs, the median one in the summary; the peers take 10-100x longer per run). Every
question carries [timing], so the answer ends with the server's own time; client
overhead per call = time the client measured for the call - the server's time (ours:
the Rust executor's per-call duration). Efficiency = ideal / wall, ideal =
ceil(N / C) x latency. CPU per call is this process's user + system time (every thread)
over the run / N. Every answer is checked; a lost or wrong one exits 1.

`--peer-n` runs the peers on fewer calls (their efficiency at the same C does not
depend on N once N >> C, and the slow ones take minutes at N = 10,000).

Part 2: a DSPy program (ChainOfThought) over --dspy-n examples with DummyLM:
parallel_agents.dspy.Parallel vs dspy.Parallel, the same exec pairs, results compared.

Prints one human line and one `key=value` line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import re
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[3]
SERVER_US = re.compile(r"^mock answer to: (\[timing\] q\d+) \[server_us=(\d+)\]$")


def cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def pct(values, p):
    v = sorted(values)
    return v[min(int(p * (len(v) - 1) + 0.5), len(v) - 1)]


def question(i: int) -> str:
    return f"[timing] q{i}"


def server_us(i: int, text) -> int:
    m = SERVER_US.match(text or "")
    if not m or m.group(1) != question(i):
        print(f"question {i}: wrong answer {text!r}", file=sys.stderr)
        sys.exit(1)
    return int(m.group(2))


def report(impl, n, c, latency_ms, wall, cpu, overheads, results):
    ideal = -(-n // c) * latency_ms / 1000.0
    o50, o99 = pct(overheads, 0.5), pct(overheads, 0.99)
    results[impl] = {"n": n, "wall": wall, "eff": ideal / wall, "cps": n / wall}
    print(
        f"{impl:<8} {n} calls at C={c}: {wall:.3f} s (ideal {ideal:.3f} s), efficiency {ideal / wall:.3f}, "
        f"{n / wall:.0f} calls/s, CPU {cpu / n * 1e6:.1f} us/call, overhead p50 {o50:.0f} us p99 {o99:.0f} us"
    )
    print(
        f"bench=python_http impl={impl} n={n} c={c} latency_ms={latency_ms:g} wall_s={wall:.4f} "
        f"ideal_s={ideal:.4f} efficiency={ideal / wall:.4f} calls_per_s={n / wall:.0f} "
        f"cpu_us_per_call={cpu / n * 1e6:.1f} overhead_p50_us={o50:.0f} overhead_p99_us={o99:.0f}",
        flush=True,
    )


def mock_llm_binary() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    exe = target / "release" / "mock-llm"
    if not exe.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "mock-llm"], cwd=ROOT, check=True)
    return exe


def start_mock_llm(latency_ms: float):
    proc = subprocess.Popen(
        [str(mock_llm_binary()), "--port", "0", "--latency-ms", str(int(latency_ms)), "--quiet", "--max-seconds", "3600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


# -- part 1 ---------------------------------------------------------------------------


def run_ours(args, url, results):
    from parallel_agents import Executor, OpenAIAgent

    agent = OpenAIAgent(base_url=url, model="bench", api_key_env="", max_tokens=16)
    runs = []
    with Executor(max_concurrency=args.c, timeout=60) as ex:
        ex.run(agent, [question(i) for i in range(args.c)])  # warm-up
        for _ in range(args.reps):
            qs = [question(i) for i in range(args.n)]
            cpu0, t0 = cpu_s(), time.perf_counter()
            rs = ex.run(agent, qs)
            wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
            overheads = [r.duration * 1e6 - server_us(i, r.answer) for i, r in enumerate(rs)]
            report("ours", args.n, args.c, args.latency_ms, wall, cpu, overheads, results)
            runs.append(results["ours"])
            # What Python adds around the Rust batch (submit, waiting, building results).
            span = ex.last_metrics.total_duration
            print(f"         batch span {span:.3f} s: Python adds {1e3 * (wall - span):.1f} ms")
            print(f"bench=python_ours_span batch_span_s={span:.4f} python_ms={1e3 * (wall - span):.1f}", flush=True)
    # The summary uses the median repetition.
    results["ours"] = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]


async def gather_bounded(c, n, call):
    sem = asyncio.Semaphore(c)

    async def one(i):
        async with sem:
            t = time.perf_counter()
            text = await call(i)
            took_us = (time.perf_counter() - t) * 1e6
        return took_us - server_us(i, text)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def timed_async(args, impl, n, call, results):
    await gather_bounded(args.c, args.c, call)  # warm-up
    cpu0, t0 = cpu_s(), time.perf_counter()
    overheads = await gather_bounded(args.c, n, call)
    wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    report(impl, n, args.c, args.latency_ms, wall, cpu, overheads, results)


async def run_openai(args, url, results):
    import httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    client = AsyncOpenAI(
        base_url=url,
        api_key="unused",
        max_retries=0,
        timeout=60.0,
        http_client=DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=args.c, max_keepalive_connections=args.c)),
    )

    async def call(i):
        r = await client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": question(i)}], max_tokens=16
        )
        return r.choices[0].message.content

    await timed_async(args, "openai", args.peer_n, call, results)
    await client.close()


async def run_litellm(args, url, results):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    import logging

    import litellm

    # LiteLLM logs a warning per call that waits for a pooled connection.
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)

    litellm.telemetry = False
    litellm.suppress_debug_info = True

    async def call(i):
        r = await litellm.acompletion(
            model="openai/bench",
            messages=[{"role": "user", "content": question(i)}],
            api_base=url,
            api_key="unused",
            max_tokens=16,
            num_retries=0,
        )
        return r.choices[0].message.content

    await timed_async(args, "litellm", args.peer_n, call, results)


async def run_aiohttp(args, url, results):
    import aiohttp

    conn = aiohttp.TCPConnector(limit=args.c)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def call(i):
            body = {"model": "bench", "messages": [{"role": "user", "content": question(i)}], "max_tokens": 16}
            async with session.post(f"{url}/chat/completions", json=body) as resp:
                data = await resp.json()
            return data["choices"][0]["message"]["content"]

        await timed_async(args, "aiohttp", args.peer_n, call, results)


# -- part 2 ---------------------------------------------------------------------------


def run_dspy(args, results):
    import logging

    import dspy

    import parallel_agents.dspy as pad

    logging.getLogger("dspy").setLevel(logging.CRITICAL)
    n = args.dspy_n
    answers = {f"question number {i}?": {"reasoning": f"think {i}", "answer": f"answer {i}"} for i in range(n)}
    program = dspy.ChainOfThought("question -> answer")
    pairs = [(program, dspy.Example(question=f"question number {i}?").with_inputs("question")) for i in range(n)]
    got = {}
    for impl, parallel in (("dspy_ours", pad.Parallel), ("dspy_theirs", dspy.Parallel)):
        with dspy.context(lm=dspy.utils.DummyLM(answers)):
            cpu0, t0 = cpu_s(), time.perf_counter()
            out = parallel(num_threads=args.dspy_threads, disable_progress_bar=True)(pairs)
            wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
        got[impl] = [None if r is None else r.answer for r in out]
        results[impl] = {"wall": wall}
        print(f"{impl:<11} {n} examples, num_threads={args.dspy_threads}: {wall:.3f} s, {n / wall:.0f} examples/s, CPU {cpu / n * 1e6:.0f} us/example")
        print(
            f"bench=python_dspy impl={impl} n={n} threads={args.dspy_threads} wall_s={wall:.4f} "
            f"examples_per_s={n / wall:.0f} cpu_us_per_example={cpu / n * 1e6:.0f}",
            flush=True,
        )
    if got["dspy_ours"] != got["dspy_theirs"] or got["dspy_ours"] != [f"answer {i}" for i in range(n)]:
        print("dspy: results differ between ours and dspy.Parallel", file=sys.stderr)
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--c", type=int, default=1_000)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--reps", type=int, default=3, help="timed runs of ours (the peers run once)")
    p.add_argument("--peer-n", type=int, default=None, help="calls for the peers (default: --n)")
    p.add_argument("--dspy-n", type=int, default=1_000)
    p.add_argument("--dspy-threads", type=int, default=16)
    p.add_argument("--only", default="ours,openai,litellm,aiohttp,dspy")
    args = p.parse_args()
    args.peer_n = args.peer_n or args.n
    only = set(args.only.split(","))
    results: dict = {}
    if only - {"dspy"}:
        proc, url = start_mock_llm(args.latency_ms)
        try:
            if "ours" in only:
                run_ours(args, url, results)
            for name, fn in (("openai", run_openai), ("litellm", run_litellm), ("aiohttp", run_aiohttp)):
                if name in only:
                    asyncio.run(fn(args, url, results))
        finally:
            proc.kill()
            proc.wait()
    if "dspy" in only:
        run_dspy(args, results)
    if "ours" in results and "openai" in results:
        ratio = results["ours"]["cps"] / results["openai"]["cps"]
        print(f"ours / AsyncOpenAI throughput: {ratio:.1f}x")
        print(f"bench=python_summary ours_over_openai={ratio:.2f}")
    if "dspy_ours" in results and "dspy_theirs" in results:
        ratio = results["dspy_theirs"]["wall"] / results["dspy_ours"]["wall"]
        print(f"dspy: ours {ratio:.2f}x the speed of dspy.Parallel")
        print(f"bench=python_summary dspy_ours_over_theirs={ratio:.2f}")


if __name__ == "__main__":
    main()
