"""Injected backend faults: every answer finishes, in time, degraded with the cause in its trace,
and the other answers of the batch are unaffected."""

from __future__ import annotations

import time

import pytest
from helpers.scripted import ScriptedLM

from gatedrag.config import BackendLimits, DecodingConfig, GateConfig, PipelineConfig, PolicyConfig, TokenRAGRule
from gatedrag.corpus.guard import GuardedCorpusStats
from gatedrag.errors import BackendTimeout, CorpusBackendError
from gatedrag.evals.faults import FAULT_KINDS, Faults, FaultyCorpusStats, FaultyLM, FaultyReranker, FaultyRetriever
from gatedrag.events import Degraded
from gatedrag.gate import Gate
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.base import retrieve_each
from gatedrag.types import CorpusCount, Hit, Passage

QUESTIONS = ["Who wrote Hamlet?", "Where is Paris?"]
LIMITS = BackendLimits(timeout_s=0.5, retries=1, backoff_s=0.0)


class Library:
    """Two passages a query, named after the query."""

    name = "library"

    def retrieve(self, queries, k):
        return [
            [Hit(passage=Passage(id=f"{q}#{j}", text=f"about {q}"), score=1.0, rank=j + 1) for j in range(2)]
            for q in queries
        ]


class FailsOn(Library):
    """Raises for any batch holding a query with ``word`` (asked alone, the others answer)."""

    def __init__(self, word: str):
        self.word = word

    def retrieve(self, queries, k):
        if any(self.word in q for q in queries):
            raise ConnectionError(f"the index shard of {self.word!r} is down")
        return super().retrieve(queries, k)


def doubtful_lm(**kwargs) -> ScriptedLM:
    """Unsure closed book (the gate retrieves on its first sentence), sure with passages."""
    return ScriptedLM([("Maybe it is Kyd.", 0.05), ("So the answer is Kyd.", 0.05)],
                      [("So the answer is Shakespeare.", 0.9)], **kwargs)  # fmt: skip


def config(**update) -> PipelineConfig:
    fields = {
        "gate": GateConfig(rules=[TokenRAGRule(threshold=0.1)]),
        "decoding": DecodingConfig(max_answer_tokens=40, batch_size=4),
        "policy": PolicyConfig(max_retrievals=2),
        "backends": LIMITS,
    }
    return PipelineConfig(**(fields | update))


def errors(answer) -> list[str]:
    return [s.error for s in answer.steps if s.error] + [e.error for e in answer.events if isinstance(e, Degraded)]


@pytest.fixture
def plans():
    made: list[Faults] = []
    yield made
    for plan in made:  # let hung calls return
        plan.release()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_retriever_fault_degrades_each_answer_and_none_waits_past_the_limit(kind, plans):
    plans.append(plan := Faults(kind=kind, slow_s=0.05))
    rag = GatedRAG(doubtful_lm(), FaultyRetriever(Library(), plan), config())
    start = time.monotonic()
    answers = rag.batch(QUESTIONS)
    assert time.monotonic() - start < 4 * LIMITS.timeout_s + 1
    assert plan.injected >= 1 and [a.text for a in answers]
    for answer in answers:
        if kind == "slow":  # within the limit: a slow backend is only slow
            assert not answer.degraded and answer.answer == "Shakespeare"
        elif kind == "partial":  # the batch call's answer is refused; each query asked alone then
            assert answer.counts.retrievals >= 1 or answer.degraded
        else:
            assert answer.degraded and answer.counts.retrievals == 0 and answer.answer == "Kyd"
            assert any(
                e.startswith("retriever failed") and ("BackendTimeout" in e if kind == "hang" else True)
                for e in errors(answer)
            )


def test_a_failing_query_costs_only_its_own_answer():
    answers = GatedRAG(doubtful_lm(), FailsOn("Hamlet"), config()).batch(QUESTIONS)
    hamlet, paris = answers
    assert hamlet.degraded and any("shard of 'Hamlet' is down" in e for e in errors(hamlet))
    assert not paris.degraded and paris.counts.retrievals == 1 and paris.answer == "Shakespeare"


def test_a_hung_retriever_is_given_no_more_than_the_turn_has_left(plans):
    plans.append(plan := Faults(kind="hang"))
    cfg = config().model_copy(update={"backends": BackendLimits(timeout_s=600)})
    start = time.monotonic()
    answer = GatedRAG(doubtful_lm(), FaultyRetriever(Library(), plan), cfg).ask(QUESTIONS[0], deadline_s=0.5)
    assert time.monotonic() - start < 2.0
    assert answer.degraded and any("did not answer within" in e for e in errors(answer))


def test_a_retry_recovers_a_transient_failure():
    plan = Faults(kind="raise", every=1000)  # only the first call fails
    answer = GatedRAG(doubtful_lm(), FaultyRetriever(Library(), plan), config()).ask(QUESTIONS[0])
    assert plan.injected == 1 and plan.calls == 2
    assert not answer.degraded and answer.answer == "Shakespeare"


def test_a_timeout_is_not_retried_nor_asked_query_by_query(plans):
    plans.append(plan := Faults(kind="hang"))
    found = retrieve_each(FaultyRetriever(Library(), plan), ["a", "b", "c"], 2, limits=BackendLimits(timeout_s=0.2))
    assert plan.calls == 1 and all(isinstance(f, BackendTimeout) for f in found)


@pytest.mark.parametrize("kind", ["raise", "malformed", "partial"])
def test_a_failing_model_round_ends_each_answer_with_what_it_has(kind):
    plan = Faults(kind=kind, first=2)  # the first round writes until the gate retrieves, the second fails
    answers = GatedRAG(FaultyLM(doubtful_lm(), plan), Library(), config()).batch(QUESTIONS)
    assert plan.injected == 1
    if kind == "partial":  # the round ran (the hook accepted each final answer), an outcome is missing
        assert [a.answer for a in answers] == ["Shakespeare", "Shakespeare"]
        return
    for answer in answers:
        assert answer.degraded and answer.finish_reason == "eos" and answer.counts.retrievals == 1
        model = [e for e in answer.events if isinstance(e, Degraded) and e.what == "model"]
        assert model and "the model failed" in model[0].error


@pytest.mark.parametrize("kind", ["raise", "malformed", "partial"])
def test_a_failing_verifier_leaves_the_answer_scored_without_it(kind):
    plan = Faults(kind=kind)
    cfg = config(policy=PolicyConfig(select={"verify": True}))
    answer = GatedRAG(FaultyLM(doubtful_lm(), plan, calls=("score",)), Library(), cfg).ask(QUESTIONS[0])
    assert plan.injected >= 1 and answer.answer == "Shakespeare"
    assert any(
        e.what == "verify" and "P(True) unavailable" in e.error for e in answer.events if isinstance(e, Degraded)
    )


@pytest.mark.parametrize("kind", ["raise", "hang", "malformed", "partial"])
def test_a_failing_reranker_keeps_the_retrieval_order(kind, plans):
    plans.append(plan := Faults(kind=kind))

    class Reverse:
        name = "reverse"

        def rerank(self, query, hits):
            return [h.model_copy(update={"rank": i + 1}) for i, h in enumerate(reversed(hits))]

    cfg = config(policy=PolicyConfig(max_retrievals=4, deep_search={"rounds": 1, "rerank": "dense"}))
    lm = ScriptedLM([("Maybe it is Kyd.", 0.05)], [("Perhaps it is Marlowe.", 0.05)])
    answer = GatedRAG(lm, Library(), cfg, reranker=FaultyReranker(Reverse(), plan)).ask(QUESTIONS[0])
    errors = [s.error for s in answer.steps if s.kind == "retrieval" and s.error]
    assert plan.injected >= 1 and answer.degraded
    assert any(e.startswith("re-ranking failed") and e.endswith("passages kept in retrieval order") for e in errors)


class Counts:
    name = "counts"

    def total_tokens(self):
        return 1000

    def count(self, phrase):
        return CorpusCount(terms=[phrase], count=5)

    def cooccurrence(self, terms, *, window=None, max_clause_freq=None):
        return CorpusCount(terms=list(terms), count=0)


@pytest.mark.parametrize("kind", ["raise", "hang", "malformed", "partial"])
def test_guarded_corpus_statistics_fail_typed_and_in_time(kind, plans):
    plans.append(plan := Faults(kind=kind))
    stats = GuardedCorpusStats(FaultyCorpusStats(Counts(), plan), BackendLimits(timeout_s=0.2, retries=0))
    start = time.monotonic()
    with pytest.raises(BackendTimeout if kind == "hang" else (CorpusBackendError, RuntimeError)):
        stats.count("Hamlet")
    assert time.monotonic() - start < 1.0


def test_a_hung_corpus_backend_becomes_a_signal_note_and_the_answer_goes_on(plans):
    plans.append(plan := Faults(kind="hang"))
    stats = GuardedCorpusStats(FaultyCorpusStats(Counts(), plan), BackendLimits(timeout_s=0.2, retries=0))

    class Entities:
        def entities(self, texts):
            return [["Hamlet"] for _ in texts]

        def triples(self, texts):
            return [[] for _ in texts]

    cfg = config(gate=GateConfig(rules=[{"signal": "entity_freq", "act": True}, TokenRAGRule(threshold=0.1)]))
    rag = GatedRAG(doubtful_lm(), Library(), cfg, gate=Gate(cfg.gate, corpus=stats, extractor=Entities()))
    answer = rag.ask(QUESTIONS[0])
    checked = next(e for e in answer.events if e.type == "question_checked")
    value = next(v for v in checked.signals if v.name == "entity_freq")
    assert value.error and "did not answer within" in value.error
    assert answer.degraded and any(e.what == "signal entity_freq" for e in answer.events if isinstance(e, Degraded))
    assert answer.answer == "Shakespeare"


@pytest.mark.parametrize("kind", ["malformed", "partial"])
def test_a_malformed_answer_is_retried_like_an_error(kind):
    plan = Faults(kind=kind, every=1000)  # only the first call is bad
    answer = GatedRAG(doubtful_lm(), FaultyRetriever(Library(), plan), config()).ask(QUESTIONS[0])
    assert plan.injected == 1 and plan.calls == 2 and not answer.degraded
    stats = GuardedCorpusStats(FaultyCorpusStats(Counts(), Faults(kind=kind, every=1000)), LIMITS)
    assert stats.count("Hamlet").count == 5
