"""The deep-search rung: escalation after an unsettling retrieval, its budgets, accumulated passages."""

from __future__ import annotations

import math

import pytest

from gatedrag.config import DecodingConfig, GateConfig, PipelineConfig, PolicyConfig, TokenRAGRule
from gatedrag.errors import ConfigError
from gatedrag.gate import Gate, Policy
from gatedrag.gate.state import AnswerState, Phase
from gatedrag.pipeline import GatedRAG
from gatedrag.signals.base import SignalBase
from gatedrag.types import Hit, Passage, SignalValue, TokenStep


class Rounds:
    """A retriever that returns two new passages on every call (and records the queries)."""

    name = "rounds"

    def __init__(self):
        self.queries: list[str] = []

    def retrieve(self, queries, k):
        out = []
        for q in queries:
            n = len(self.queries)
            self.queries.append(q)
            out.append(
                [
                    Hit(passage=Passage(id=f"p{2 * n + j}", text=f"alpha {n} {j}"), score=1.0, rank=j + 1)
                    for j in range(k)
                ]
            )
        return out


class FiresTimes(SignalBase):
    """Fires on its first ``times`` evaluations, then never (a sentence that a search settles)."""

    name = "token_rag"
    rung = "retrieve"

    def __init__(self, times: int):
        self.left = times

    def evaluate(self, tokens, context=None):
        fired, self.left = self.left > 0, self.left - 1
        return SignalValue(name=self.name, value=1.0 if fired else 0.0, threshold=0.5, fired=fired)


class MasksFirstTokens(FiresTimes):
    """Always fires; its queries leave out the sentence's first two tokens."""

    def __init__(self):
        super().__init__(times=1000)

    def query_mask(self, tokens):
        return {0, 1}


def config(**policy) -> PipelineConfig:
    return PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.0)]),  # a random model is always unsure
        decoding=DecodingConfig(max_answer_tokens=24, max_sentence_tokens=8),
        retrieval={"top_k": 2},
        policy=PolicyConfig(**policy),
    )


def retrievals(answer):
    return [s for s in answer.steps if s.kind == "retrieval"]


def test_policy_escalates_a_sentence_still_doubtful_after_its_retrieval():
    cfg = config(deep_search={"rounds": 2}, max_retrievals=5)
    bundle = Gate(cfg.gate).evaluate([TokenStep(token_id=1, text=" x", logprob=math.log(0.5), entropy=2.0)])
    policy = Policy(cfg, has_retriever=True)
    assert policy.on_sentence(bundle, AnswerState(phase=Phase.ANSWERING)).kind == "retrieve"
    a = policy.on_sentence(bundle, AnswerState(phase=Phase.REGENERATING, retrievals=1))
    assert (a.kind, a.query_source, a.note) == ("deep_search", "search", "deep search round 1 of 2")
    spent = policy.on_sentence(bundle, AnswerState(phase=Phase.REGENERATING, retrievals=3, search_rounds=2))
    assert spent.kind == "accept" and spent.vetoes[0].rule == "search_budget"
    broke = policy.on_sentence(bundle, AnswerState(phase=Phase.REGENERATING, retrievals=5, search_rounds=1))
    assert broke.kind == "accept" and broke.vetoes[0].rule == "retrieval_budget"
    capped = Policy(config(deep_search={"rounds": 2, "max_prompt_tokens": 900}, max_retrievals=5), has_retriever=True)
    read = capped.on_sentence(bundle, AnswerState(phase=Phase.REGENERATING, retrievals=1, prompt_tokens=900))
    assert read.kind == "accept" and read.vetoes[0].text == "deep search: 900 prompt tokens read"
    off = Policy(config(max_retrievals=5), has_retriever=True)  # without deep search: one retrieval a sentence
    assert off.on_sentence(bundle, AnswerState(phase=Phase.REGENERATING)).vetoes[0].rule == "just_regenerated"


def test_search_runs_its_rounds_then_keeps_the_last_version(tiny_lm):
    retriever = Rounds()
    cfg = config(deep_search={"rounds": 2, "max_passages": 3}, max_retrievals=10)
    rag = GatedRAG(tiny_lm, retriever, cfg, gate=Gate(signals=[MasksFirstTokens()]))
    answer = rag.ask("alpha?")
    first = retrievals(answer)[:3]
    assert [s.trigger for s in first] == [
        "sentence 1",
        "deep search round 1, sentence 1",
        "deep search round 2, sentence 1",
    ]
    assert first[1].carried == ["p0"] and first[2].carried == ["p2"]  # 2 new + 1 kept = max_passages
    assert retriever.queries[1].startswith("alpha?")  # round 1 queries with the question first
    # nothing accepted yet: round 2's "previous" query would repeat round 1's, so the sentence as written is sent
    assert retriever.queries[2] != retriever.queries[1] and retriever.queries[2].startswith("alpha?")
    sentences = [s for s in answer.steps if s.kind == "sentence"]
    assert [s.decision.action for s in sentences[:4]] == ["retrieve", "deep_search", "deep_search", "accept"]
    assert sentences[3].accepted and sentences[3].decision.note == "deep search: 2 round(s) spent"
    assert answer.counts.retrievals >= 3


def test_search_stops_on_the_retrieval_budget(tiny_lm):
    answer = GatedRAG(tiny_lm, Rounds(), config(deep_search={"rounds": 5}, max_retrievals=2)).ask("alpha?")
    assert [s.trigger for s in retrievals(answer)] == ["sentence 1", "deep search round 1, sentence 1"]
    assert answer.counts.retrievals == 2


def test_search_stops_as_soon_as_the_sentence_is_settled(tiny_lm):
    cfg = config(deep_search={"rounds": 3}, max_retrievals=10)
    rag = GatedRAG(tiny_lm, Rounds(), cfg, gate=Gate(signals=[FiresTimes(2)]))
    answer = rag.ask("alpha?")
    assert [s.trigger for s in retrievals(answer)] == ["sentence 1", "deep search round 1, sentence 1"]
    settled = [s for s in answer.steps if s.kind == "sentence"][2]
    assert settled.accepted and settled.decision.action == "accept" and not settled.decision.reasons


def test_dense_rerank_needs_a_reranker_and_orders_the_prompt(tiny_lm):
    cfg = config(deep_search={"rounds": 1, "rerank": "dense"}, max_retrievals=10)
    with pytest.raises(ConfigError, match="reranker"):
        GatedRAG(tiny_lm, Rounds(), cfg)

    class Reverse:
        name = "reverse"

        def __init__(self):
            self.seen = []

        def rerank(self, query, hits):
            self.seen.append([h.passage.id for h in hits])
            return [h.model_copy(update={"rank": r}) for r, h in enumerate(reversed(hits), 1)]

    reverse = Reverse()
    answer = GatedRAG(tiny_lm, Rounds(), cfg, reranker=reverse).ask("alpha?")
    search = retrievals(answer)[1]
    assert search.note == "passages re-ranked by reverse" and reverse.seen[0] == ["p2", "p3", "p0", "p1"]


def test_uncertainty_rerank_puts_the_passage_the_model_is_surest_with_first():
    from helpers.scripted import ScriptedLM

    class Titled(Rounds):
        def retrieve(self, queries, k):
            return [
                [h.model_copy(update={"passage": h.passage.model_copy(update={"title": h.passage.id})}) for h in hits]
                for hits in super().retrieve(queries, k)
            ]

    doubtful = [("So the answer is Burton.", 0.3)]
    lm = ScriptedLM(doubtful, doubtful, fits={"p1": 0.2, "p2": 0.9, "p3": 0.6, "p0": 0.4})
    cfg = config(deep_search={"rounds": 1, "rerank": "uncertainty"}, max_retrievals=5)
    cfg = cfg.model_copy(update={"gate": GateConfig(rules=[TokenRAGRule(threshold=0.1)])})
    answer = GatedRAG(lm, Titled(), cfg).ask("alpha?")
    search = retrievals(answer)[1]
    assert search.trigger.startswith("deep search round 1") and search.note.startswith(
        "passages re-ranked by the sentence's NLL"
    )
    scored = [p for p in lm.scored if "Proposed answer" not in p]
    assert len(scored) == 4  # p2, p3 new + p0, p1 kept: one scoring pass over the four
    assert answer.counts.retrievals == 2
    last = lm.started[-1]  # the sentence is written again with the surest passage first
    assert [last.index(f"{t}:") for t in ("p2", "p3", "p0", "p1")] == sorted(
        last.index(f"{t}:") for t in ("p2", "p3", "p0", "p1")
    )


def test_search_stops_on_the_prompt_token_budget(tiny_lm):
    cfg = config(deep_search={"rounds": 5, "max_prompt_tokens": 1}, max_retrievals=10)
    answer = GatedRAG(tiny_lm, Rounds(), cfg).ask("alpha?")
    assert [s.trigger for s in retrievals(answer)][:1] == ["sentence 1"]
    assert not any(s.trigger.startswith("deep search") for s in retrievals(answer))
    notes = [s.decision.note for s in answer.steps if s.kind == "sentence" and s.accepted]
    assert "deep search: 1 prompt tokens read" in notes
