"""Real DSPy programs, run offline with DSPy's own DummyLM."""

import dspy
from dspy.utils.dummies import DummyLM

CAPITALS = {
    "What is the capital of France?": "Paris",
    "What is the capital of Japan?": "Tokyo",
    "What is the capital of Italy?": "Rome",
    "What is the capital of Kenya?": "Nairobi",
}


def make_predict():
    """dspy.Predict over an LM that answers by question (DummyLM's dict mode)."""
    program = dspy.Predict("question -> answer")
    # set_lm rather than dspy.configure: configure may only be called from one thread.
    program.set_lm(DummyLM({q: {"answer": a} for q, a in CAPITALS.items()}))
    return program


def make_voters():
    """dspy.ChainOfThought over an LM whose five scripted replies disagree in form (and
    one in substance): consensus must see four votes for Paris."""
    replies = ["Paris", "paris.", "  PARIS ", "Paris!", "Lyon"]
    program = dspy.ChainOfThought("question -> answer")
    program.set_lm(DummyLM([{"reasoning": "It is in France.", "answer": r} for r in replies]))
    return program


class CapitalProgram(dspy.Module):
    """A DSPy Module subclass as target: instantiated like a factory."""

    def __init__(self):
        super().__init__()
        self.predict = make_predict()

    def forward(self, question):
        return self.predict(question=question)
