"""The DSPy drop-in on a real DSPy program with DummyLM, compared result by result with
dspy.Parallel on the same program and examples; dspy.Evaluate through patch(); a DSPy
module as an Executor agent."""

from __future__ import annotations

import pytest

dspy = pytest.importorskip("dspy")

import parallel_agents.dspy as pad  # noqa: E402
from parallel_agents import CallableAgent, Executor  # noqa: E402

N = 60


def lm() -> "dspy.utils.DummyLM":
    answers = {f"question number {i}?": {"reasoning": f"think {i}", "answer": f"answer {i}"} for i in range(N)}
    return dspy.utils.DummyLM(answers)


class QA(dspy.Module):
    """A real program: ChainOfThought, plus a failure on every 7th question."""

    def __init__(self):
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question):
        n = int(question.split()[2].rstrip("?"))
        if n % 7 == 3:
            raise ValueError(f"refusing question {n}")
        return self.cot(question=question)


def examples():
    return [dspy.Example(question=f"question number {i}?", answer=f"answer {i}").with_inputs("question") for i in range(N)]


def run_both(**kwargs):
    program = QA()
    pairs = [(program, ex) for ex in examples()]
    with dspy.context(lm=lm()):
        theirs = dspy.Parallel(**kwargs)(pairs)
    with dspy.context(lm=lm()):
        ours = pad.Parallel(**kwargs)(pairs)
    return theirs, ours


def as_comparable(results):
    return [None if r is None else dict(r.items()) for r in results]


def test_parallel_matches_dspy_parallel_result_by_result():
    theirs, ours = run_both(num_threads=8, max_errors=100, disable_progress_bar=True)
    assert len(ours) == N
    assert as_comparable(ours) == as_comparable(theirs)
    assert sum(r is None for r in ours) == len([i for i in range(N) if i % 7 == 3])
    assert ours[0].answer == "answer 0" and ours[0].reasoning == "think 0"


def test_return_failed_examples_matches():
    (t_res, t_failed, t_exc), (o_res, o_failed, o_exc) = run_both(
        num_threads=4, max_errors=100, return_failed_examples=True, disable_progress_bar=True
    )
    assert as_comparable(o_res) == as_comparable(t_res)
    key = lambda ex: ex.question  # noqa: E731 - completion order may differ
    assert sorted(o_failed, key=key) == sorted(t_failed, key=key)
    assert sorted(map(str, o_exc)) == sorted(map(str, t_exc))
    assert all(isinstance(e, ValueError) for e in o_exc)


def test_max_errors_raises_like_dspy():
    for parallel in (dspy.Parallel, pad.Parallel):
        program = QA()
        with dspy.context(lm=lm()):
            with pytest.raises(Exception, match="Execution cancelled due to errors"):
                parallel(num_threads=2, max_errors=2, disable_progress_bar=True)([(program, ex) for ex in examples()])


def test_dict_and_tuple_examples():
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm()):
        ours = pad.Parallel(num_threads=4, disable_progress_bar=True)(
            [(program, {"question": "question number 1?"}), (QA(), ("question number 2?",))]
        )
    assert [r.answer for r in ours] == ["answer 1", "answer 2"]


def test_evaluate_through_patch_matches_evaluate():
    program = QA()
    devset = examples()

    def metric(example, prediction, trace=None):
        return example.answer == prediction.answer

    evaluate = dspy.Evaluate(devset=devset, metric=metric, num_threads=8, display_progress=False, max_errors=100)
    with dspy.context(lm=lm()):
        theirs = evaluate(program)
    with dspy.context(lm=lm()), pad.patch():
        import dspy.evaluate.evaluate as ev

        assert ev.ParallelExecutor is pad.ParallelExecutor
        ours = evaluate(program)
    assert ev.ParallelExecutor is not pad.ParallelExecutor
    assert ours.score == theirs.score
    assert [(e.question, dict(p.items()), s) for e, p, s in ours.results] == [
        (e.question, dict(p.items()), s) for e, p, s in theirs.results
    ]


def test_dspy_module_as_an_executor_agent():
    program = dspy.ChainOfThought("question -> answer")
    qs = [f"question number {i}?" for i in range(N)]
    with dspy.context(lm=lm()):
        agent = CallableAgent(program)  # acall on the shared event loop
        sync_agent = CallableAgent(program, prefer_async=False)
    assert agent.is_async and not sync_agent.is_async
    with Executor(max_concurrency=16) as ex:
        for a in (agent, sync_agent):
            rs = ex.run(a, qs)
            assert [r.answer for r in rs] == [f"answer {i}" for i in range(N)]
