"""Answer a JSONL file of questions on a Ray cluster with ``parallel_agents.ray``.

Each Ray actor holds one parallel-agents executor with many calls in flight; Ray Data
spreads the batches over the actors (and the machines), restarts a lost actor and reruns
its batches. Every input row comes back once, failed or not, with its id.

Input: JSONL rows ``{"id": ..., "question": ...}`` (``--input``), or ``--make N`` made-up
questions. Output: Parquet files in ``--output`` with the input columns plus ``answer``,
``outcome``, ``error``, ``prompt_tokens``, ``completion_tokens``, ``attempts``.

Against the local mock-llm, from the repository root::

    cargo build -p mock-llm && target/debug/mock-llm --port 8090 --latency-ms 50 &
    .venv/bin/python bindings/python/examples/ray_map_batches.py --make 10000 --output /tmp/answers

Against a provider (the key in ``OPENAI_API_KEY``)::

    PA_BASE_URL=https://api.openai.com/v1 PA_MODEL=gpt-4o-mini PA_API_KEY_ENV=OPENAI_API_KEY \\
        python ray_map_batches.py --input questions.jsonl --output answers/ --checkpoint ckpt/

``RAY_ADDRESS`` joins a running cluster (else Ray starts one on this machine). With
``--checkpoint DIR`` (a directory every node can reach), Ray Data records the ids written,
and a rerun after a crash asks only the rest. With ``--redis redis://host:6379/0 --rpm
600``, every actor draws on one budget of 600 requests per minute kept in Redis.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import pathlib
import tempfile
import time

import ray

from parallel_agents import RateLimiter
from parallel_agents.ray import Answerer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="JSONL with id and question fields")
    src.add_argument("--make", type=int, metavar="N", help="make N questions instead")
    p.add_argument("--output", required=True, help="directory for the Parquet output")
    p.add_argument("--actors", type=int, default=2, help="actors (one executor each)")
    p.add_argument("--max-concurrency", type=int, default=64, help="calls in flight per actor")
    p.add_argument("--batch-size", type=int, default=512, help="rows per batch (a few times max-concurrency)")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--checkpoint", help="Ray Data checkpoint directory: a rerun skips the ids already written")
    p.add_argument("--redis", metavar="URL", help="share one budget of --rpm starts per minute through Redis")
    p.add_argument("--rpm", type=float, default=600.0, help="requests per minute of the --redis budget")
    args = p.parse_args()

    # The agent is built inside each actor from these keyword arguments.
    agent = {
        "base_url": os.environ.get("PA_BASE_URL", "http://127.0.0.1:8090/v1"),  # mock-llm
        "model": os.environ.get("PA_MODEL", "mock"),
        "api_key_env": os.environ.get("PA_API_KEY_ENV", ""),  # "" sends no key
    }

    path = args.input
    if path is None:  # made-up questions, written out so that the pipeline starts with a read
        path = os.path.join(tempfile.mkdtemp(), "questions.jsonl")
        with open(path, "w") as f:
            f.writelines(json.dumps({"id": i, "question": f"What is {i} + {i}?"}) + "\n" for i in range(args.make))

    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level="warning")
    else:
        # A Ray of our own: at least 4 logical CPUs, since the actors mostly wait on the
        # network, and a checkpointed pipeline needs a CPU for its checkpoint filter actor
        # and one per read task besides (with fewer, Ray Data waits for them for ever).
        ray.init(num_cpus=max(4, os.cpu_count() or 1), logging_level="warning")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if args.checkpoint:
        from ray.data.checkpoint import CheckpointConfig

        ctx.checkpoint_config = CheckpointConfig(
            id_column="id", checkpoint_path=os.path.abspath(args.checkpoint), delete_checkpoint_on_success=False
        )

    # Every actor builds its limiter from this (a RateLimiter cannot be pickled); all of
    # them, on every node, draw on the one budget under the key.
    limiter = None
    if args.redis:
        limiter = functools.partial(RateLimiter.redis, args.redis, f"pa:{agent['model']}", args.rpm)

    started = time.monotonic()
    ray.data.read_json(path).map_batches(
        Answerer,
        fn_constructor_kwargs={
            "agent": agent,
            "executor": {"max_concurrency": args.max_concurrency, "retries": args.retries, "timeout": args.timeout},
            "rate_limiter": limiter,
        },
        batch_size=args.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_cpus=0.5,  # the actors mostly wait on the network
        udf_modifying_row_count=False,
    ).write_parquet(args.output)
    elapsed = time.monotonic() - started

    # A summary of everything in --output (earlier runs' files too, when resuming).
    ctx.checkpoint_config = None  # this read is not a pipeline to checkpoint
    done = ray.data.read_parquet(args.output).select_columns(["outcome", "prompt_tokens", "completion_tokens"])
    outcomes: collections.Counter = collections.Counter()
    tokens = [0, 0]
    for b in done.iter_batches(batch_format="pyarrow", batch_size=None):
        outcomes.update(b.column("outcome").to_pylist())
        tokens[0] += sum(t or 0 for t in b.column("prompt_tokens").to_pylist())
        tokens[1] += sum(t or 0 for t in b.column("completion_tokens").to_pylist())
    print(
        f"{sum(outcomes.values())} rows in {pathlib.Path(args.output).resolve()} after {elapsed:.1f} s: "
        f"{dict(outcomes)}; tokens {tokens[0]} prompt, {tokens[1]} completion"
    )


if __name__ == "__main__":
    main()
