"""RateLimiter: shared by executors in one process, and through Redis by processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from parallel_agents import Executor, MockAgent, RateLimiter


def test_a_local_limiter_is_shared_by_executors():
    # 600 per minute = 10/s: 2 executors × 5 starts share it, so 10 starts take ~0.9 s
    # (each alone would take ~0.4 s).
    import time

    limiter = RateLimiter(600)
    assert limiter.requests_per_minute == pytest.approx(600)
    agent = MockAgent(latency=0)
    t0 = time.monotonic()
    with Executor(rate_limiter=limiter) as a, Executor(rate_limiter=limiter) as b:
        import threading

        out = {}
        th = threading.Thread(target=lambda: out.setdefault("a", a.run(agent, ["x"] * 5)))
        th.start()
        rb = b.run(agent, ["y"] * 5)
        th.join()
    took = time.monotonic() - t0
    assert all(r.ok for r in out["a"] + rb)
    assert took >= 0.85, f"10 starts at 10/s took {took:.2f} s: the limiter was not shared"


def test_bad_arguments_and_unreachable_redis_say_why_without_the_password():
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(60, burst=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="tokens_per_minute"):
        RateLimiter.redis("redis://127.0.0.1:1/0", "k", 60, tokens_per_minute=0)
    with pytest.raises(ConnectionError, match="cannot reach Redis") as e:
        RateLimiter.redis("redis://user:s3cret-pw@127.0.0.1:1/0", "k", 60)
    assert "127.0.0.1:1" in str(e.value) and "s3cret" not in str(e.value)
    with pytest.raises(ValueError, match="not usable"):
        RateLimiter.redis("http://nope", "k", 60)
    with pytest.raises(ValueError, match="not both"):
        Executor(rate_limit=1.0, rate_limiter=RateLimiter(60))
    with pytest.raises(TypeError, match="rate_limiter"):
        Executor(rate_limiter="redis://x")  # type: ignore[arg-type]


CHILD = textwrap.dedent(
    """
    import sys
    from parallel_agents import Executor, OpenAIAgent, RateLimiter
    redis_url, mock_url, tag, n = sys.argv[1:5]
    limiter = RateLimiter.redis(redis_url, "py-shared", 600, tokens_per_minute=1_000_000)
    agent = OpenAIAgent(base_url=mock_url, model="mock", api_key_env="", max_tokens=16)
    with Executor(max_concurrency=8, rate_limiter=limiter) as ex:
        rs = ex.run(agent, [f"[tag={tag}] q{i}" for i in range(int(n))])
    bad = [r.error for r in rs if not r.ok]
    assert not bad, bad
    print(repr(limiter))
    """
)


def test_two_processes_share_one_redis_budget(redis_server, mock_llm):
    # 600 per minute (10/s) shared by 2 processes × 20 questions: ~4 s at the limit.
    mock_llm.reset()
    kids = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, redis_server.url, mock_llm.url, f"py{i}", "20"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for k in kids:
        out, _ = k.communicate(timeout=60)
        assert k.returncode == 0
        assert "RedisBudget" in out and "py-shared" in out
    log = mock_llm.stats()["log"]
    starts = sorted(e["t_us"] for e in log if e["tag"] in ("py0", "py1"))
    assert len(starts) == 40
    span = (starts[-1] - starts[0]) / 1e6
    rate = (len(starts) - 1) / span
    # The limit, plus one lease (0.2 s of budget) a process may spend at once.
    assert rate <= (10 * span * 1.05 + 2) / span, f"{rate:.2f}/s over 10/s"
    assert rate >= 10 * 0.85, f"{rate:.2f}/s: the budget was not used"
    for tag in ("py0", "py1"):
        mine = [e for e in log if e["tag"] == tag]
        assert len(mine) == 20
