"""Python peers of c_openai_bench.c: the same N calls at concurrency C against mock-llm.

    python py_openai_bench.py openai  BASE_URL [--n 10000] [--c 1000] [--latency-ms 100] [--reps 3]
    python py_openai_bench.py litellm BASE_URL ...

openai:  the official client, AsyncOpenAI, one call per task behind asyncio.Semaphore(C);
         its httpx pool sized to C connections, all kept alive (the client's default keeps
         100 alive), no retries. Client time per call is measured around the awaited call.
litellm: litellm.batch_completion (a thread pool of C workers over the sync OpenAI
         client); client time per call is the response's _response_ms when LiteLLM sets it.

Like the C bench, every question carries [timing] so the answer ends with the server's
own time (server_us=...), a warm-up of C calls opens the connections first, and every
answer is checked (exit 1 if one is lost or wrong). Prints one `key=value` line per rep.
"""

import argparse
import asyncio
import os
import re
import resource
import statistics
import sys
import time

SERVER_US = re.compile(r"^mock answer to: (\[timing\] q\d+) \[server_us=(\d+)\]$")


def cpu_s():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def pct(sorted_values, p):
    k = int(p * (len(sorted_values) - 1) + 0.5)
    return sorted_values[min(k, len(sorted_values) - 1)]


def question(i):
    return f"[timing] q{i}"


def server_us(i, text):
    m = SERVER_US.match(text or "")
    if not m or m.group(1) != question(i):
        print(f"question {i}: wrong answer {text!r}", file=sys.stderr)
        sys.exit(1)
    return int(m.group(2))


def report(impl, rep, n, c, latency_ms, wall, cpu, overheads):
    ideal = -(-n // c) * latency_ms / 1000.0
    line = (
        f"bench=openai impl={impl} rep={rep} n={n} c={c} latency_ms={latency_ms:g} "
        f"wall_s={wall:.4f} ideal_s={ideal:.4f} efficiency={ideal / wall:.4f} "
        f"calls_per_s={n / wall:.0f}"
    )
    human = f"{impl:<10} rep {rep}: {n} calls at C={c} in {wall:.3f} s (ideal {ideal:.3f} s, efficiency {ideal / wall:.3f})"
    if overheads:
        o = sorted(overheads)
        line += f" overhead_p50_us={pct(o, 0.5):.0f} overhead_p99_us={pct(o, 0.99):.0f}"
        human += f", overhead/call p50 {pct(o, 0.5):.0f} us p99 {pct(o, 0.99):.0f} us"
    line += f" cpu_us_per_call={cpu / n * 1e6:.1f}"
    human += f", CPU {cpu / n * 1e6:.1f} us/call"
    print(human)
    print(line, flush=True)


async def run_openai(args):
    import httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    client = AsyncOpenAI(
        base_url=args.base_url,
        api_key="unused",
        max_retries=0,
        timeout=60.0,
        http_client=DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=args.c, max_keepalive_connections=args.c)
        ),
    )
    sem = asyncio.Semaphore(args.c)

    async def one(i):
        async with sem:
            t = time.perf_counter()
            r = await client.chat.completions.create(
                model="bench",
                messages=[{"role": "user", "content": question(i)}],
                max_tokens=16,
            )
            took_us = (time.perf_counter() - t) * 1e6
        return took_us - server_us(i, r.choices[0].message.content)

    await asyncio.gather(*(one(i) for i in range(args.c)))  # warm-up
    for rep in range(1, args.reps + 1):
        cpu0, t0 = cpu_s(), time.perf_counter()
        overheads = await asyncio.gather(*(one(i) for i in range(args.n)))
        wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
        report("py_openai", rep, args.n, args.c, args.latency_ms, wall, cpu, overheads)
    await client.close()


def run_litellm(args):
    # No network: LiteLLM would otherwise fetch its model price list at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True

    def batch(indices):
        rs = litellm.batch_completion(
            model="openai/bench",
            messages=[[{"role": "user", "content": question(i)}] for i in indices],
            api_base=args.base_url,
            api_key="unused",
            max_tokens=16,
            max_workers=args.c,
        )
        overheads = []
        for i, r in zip(indices, rs):
            if isinstance(r, Exception):
                print(f"question {i}: {r!r}", file=sys.stderr)
                sys.exit(1)
            s = server_us(i, r.choices[0].message.content)
            ms = getattr(r, "_response_ms", None)
            if ms is not None:
                overheads.append(ms * 1000.0 - s)
        return overheads

    batch(list(range(args.c)))  # warm-up
    for rep in range(1, args.reps + 1):
        cpu0, t0 = cpu_s(), time.perf_counter()
        overheads = batch(list(range(args.n)))
        wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
        report("py_litellm", rep, args.n, args.c, args.latency_ms, wall, cpu, overheads)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("impl", choices=["openai", "litellm"])
    p.add_argument("base_url")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--c", type=int, default=1_000)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    if args.impl == "openai":
        asyncio.run(run_openai(args))
    else:
        run_litellm(args)


if __name__ == "__main__":
    main()
