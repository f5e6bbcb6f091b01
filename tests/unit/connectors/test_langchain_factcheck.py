"""The fact checker as a LangChain Runnable: invoke / batch / async, custom events, bad input."""

from __future__ import annotations

import asyncio

import pytest
from helpers.factlm import FactLM, OnePassage
from langchain_core.callbacks import BaseCallbackHandler

from gatedrag.connectors.langchain.factcheck import FactCheckRunnable, verdict_of
from gatedrag.errors import InputError
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.routing import RoutingConfig


class Events(BaseCallbackHandler):
    def __init__(self):
        self.names: list[str] = []

    def on_custom_event(self, name, data, *, run_id, tags=None, metadata=None, **kw):
        self.names.append(name)


def runnable() -> FactCheckRunnable:
    lm = FactLM(
        closed={"Alpha": [(" True", 0.9), (" False", 0.05)], "Water": [(" True", 0.5), (" False", 0.45)]},
        evidence={"Water": [(" False", 0.85), (" True", 0.1)]},
        phi={"Alpha": 0.1, "Water": 0.9},
    )
    config = FactCheckConfig(routing=RoutingConfig(alpha=0.4, beta=0.5), rationales=1)
    return FactCheckRunnable.from_checker(FactChecker(lm, OnePassage("Boiling", "Water boils at 100 degrees."), config))


def test_invoke_returns_the_verdict_and_dispatches_every_event():
    events = Events()
    out = runnable().invoke({"claim": "Water boils at 90 C."}, config={"callbacks": [events]})
    assert out["label"] == "refuted" and out["route"] == "deep_search" and out["evidence"][0]["title"] == "Boiling"
    verdict = verdict_of(out)
    assert events.names == ["gatedrag_factcheck_" + e.type for e in verdict.events]
    assert "gatedrag_factcheck_routed" in events.names and events.names[-1] == "gatedrag_factcheck_verdict_given"


def test_batch_checks_together_and_a_bad_input_fails_alone():
    outs = runnable().batch(["Alpha is so.", 42, {"query": "Water boils at 90 C."}], return_exceptions=True)
    assert outs[0]["label"] == "supported" and isinstance(outs[1], InputError) and outs[2]["label"] == "refuted"
    with pytest.raises(InputError, match="needs 'claim'"):
        runnable().invoke({"question": "Alpha is so."})
    with pytest.raises(InputError):
        runnable().invoke("")


def test_async_twins_give_the_same_verdicts():
    r = runnable()

    async def main():
        return await r.ainvoke("Alpha is so."), await r.abatch(["Alpha is so.", "Water boils at 90 C."])

    one, many = asyncio.run(main())
    assert one["label"] == "supported" and [o["label"] for o in many] == ["supported", "refuted"]
    with pytest.raises(InputError):
        FactCheckRunnable.from_checker("not a checker")  # type: ignore[arg-type]
