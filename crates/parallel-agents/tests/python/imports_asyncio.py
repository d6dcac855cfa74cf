"""An agent whose module imports asyncio (and with it `signal`), for
tests/python_signals.rs: loading it must leave the host's signal dispositions alone."""

import asyncio


def answer(question, agent_id):
    return "sync %d: %s" % (agent_id, question)


async def aanswer(question, agent_id):
    await asyncio.sleep(0)
    return "async %d: %s" % (agent_id, question)
