"""The I/O-bound Python function both executors run: sleep 100 ms, echo the question."""

import time

LATENCY_S = 0.1


def sleepy(question, agent_id=0):
    time.sleep(LATENCY_S)
    return f"{agent_id}:{question}"
