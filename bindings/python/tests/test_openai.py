"""OpenAIAgent (the Rust HTTP client) against our own mock-llm on 127.0.0.1."""

from __future__ import annotations

from parallel_agents import Executor, OpenAIAgent


def test_ten_thousand_questions_at_a_thousand_in_flight_exactly_once(mock_llm):
    mock_llm.reset()
    agent = OpenAIAgent(base_url=mock_llm.url, model="mock", api_key_env="")
    qs = [f"question {i}" for i in range(10_000)]
    with Executor(max_concurrency=1000, timeout=30) as ex:
        rs = ex.run(agent, qs)
        m = ex.last_metrics
    assert [r.index for r in rs] == list(range(10_000))
    bad = [r for r in rs if not r.ok]
    assert not bad, bad[:3]
    assert all(r.answer == f"mock answer to: {q}" for r, q in zip(rs, qs))
    assert all(r.attempts == 1 and r.prompt_tokens and r.completion_tokens for r in rs)
    stats = mock_llm.stats()
    assert stats["requests"] == 10_000  # each question asked exactly once
    assert stats["max_in_flight"] <= 1000
    assert m.successful_count == 10_000
    assert m.completion_tokens == sum(r.completion_tokens for r in rs)


def test_server_errors_are_retried_and_reported(mock_llm):
    agent = OpenAIAgent(base_url=mock_llm.url, model="mock", api_key_env="", system_prompt="Be brief.")
    with Executor(max_concurrency=4, retries=2, backoff=0.001, backoff_cap=0.01) as ex:
        ok, bad = ex.run(agent, ["[status=500][fail-first=1] flaky", "[status=400] broken"])
    assert ok.ok and ok.attempts == 2
    assert bad.outcome == "failed" and bad.attempts == 1 and "400" in bad.error


def test_stream_and_tokens_per_minute(mock_llm):
    agent = OpenAIAgent(base_url=mock_llm.url, model="mock", api_key_env="")
    with Executor(max_concurrency=50, tokens_per_minute=10_000_000) as ex:
        rs = list(ex.stream(agent, [f"q{i}" for i in range(100)]))
    assert sorted(r.index for r in rs) == list(range(100))
    assert all(r.ok for r in rs)


def test_only_fields_set_are_sent_and_secrets_stay_out(mock_llm, monkeypatch):
    import json

    import pytest

    plain = OpenAIAgent(base_url=mock_llm.url, model="mock", api_key_env="")
    tuned = OpenAIAgent(
        base_url=mock_llm.url,
        model="mock",
        api_key_env="",
        max_completion_tokens=64,
        extra_body={"seed": 7, "response_format": {"type": "json_object"}},
    )
    with Executor(max_concurrency=2) as ex:
        (p,) = ex.run(plain, ["[echo-request] q"])
        (t,) = ex.run(tuned, ["[echo-request] q"])
    sent_plain, sent_tuned = json.loads(p.answer), json.loads(t.answer)
    assert "temperature" not in sent_plain and "max_tokens" not in sent_plain
    assert sent_tuned["max_completion_tokens"] == 64 and sent_tuned["seed"] == 7
    with pytest.raises(ValueError, match="model"):
        OpenAIAgent(extra_body={"model": "other"})

    key = "sk-python-test-0123456789abcdefghij"
    monkeypatch.setenv("PAGENT_PY_TEST_KEY", key)
    keyed = OpenAIAgent(base_url=mock_llm.url, model="mock", api_key_env="PAGENT_PY_TEST_KEY")
    with Executor(max_concurrency=2) as ex:
        rs = ex.run(keyed, ["[echo-headers][status=400][pad=250] e", "[echo-headers] a"])
    for r in rs:
        assert not r.ok
        assert key[:8] not in (r.error or "") and key[-8:] not in (r.error or "")
        assert r.answer is None or key[-8:] not in r.answer
