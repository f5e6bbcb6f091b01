"""The fact checker on the real default model and real SciFact claims: a claim its cited abstract
supports is supported, with the abstract as evidence and its rationale sentences in SciFact's
indices; the same claim against a corpus from another domain is not enough information, never a
guess; a claim its cited abstract contradicts is refuted under the label bias tuned on SciFact
train (without it the default model calls almost no refuted claim refuted: BENCHMARKS, issue 20)."""

from __future__ import annotations

import json

import pytest

from gatedrag.evals.claims import load_scifact, scifact_sentences
from gatedrag.factcheck.checker import FactChecker
from gatedrag.factcheck.config import FactCheckConfig
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage

pytestmark = pytest.mark.model

ONE_SEARCH = FactCheckConfig(rationales=1, force_route="deep_search", deep_rounds=1, top_k=1)


TUNED_BIAS = {"refuted": 1.0, "nei": 1.0}
"""The label bias ``bench_factcheck.py tune`` chose on SciFact train (benchmarks/results/factcheck/tuned.yaml)."""


def _claim_and_abstract(data_dir, claim_id):
    claim = next(c for c in load_scifact(data_dir / "scifact" / "claims_train.jsonl") if c.id == claim_id)
    docs = [json.loads(line) for line in (data_dir / "scifact" / "corpus.jsonl").open()]
    abstract = next(d for d in docs if d["id"] in claim.evidence)
    return claim, Passage(id=abstract["id"], title=abstract["title"], text=abstract["text"])


@pytest.fixture(scope="module")
def folate(data_dir):
    """SciFact train claim 34 (SUPPORT) and its cited abstract."""
    return _claim_and_abstract(data_dir, "34")


def test_a_claim_its_abstract_supports_is_supported_with_the_abstract_as_evidence(default_rag, data_dir, folate):
    claim, abstract = folate
    sentences = scifact_sentences(data_dir / "scifact" / "corpus_official.jsonl")
    checker = FactChecker(default_rag.lm, BM25Retriever.build([abstract]), ONE_SEARCH, sentences=sentences)
    v = checker.check(claim.claim)
    assert claim.label == "supported" and v.label == "supported" and v.confidence > 0.5
    assert [e.passage.id for e in v.evidence] == [abstract.id] and v.searches == 1
    named = v.evidence[0].sentences
    assert named and all(0 <= i < len(sentences(abstract)) for i in named)  # SciFact's own sentence indices
    assert 1 + 2 + 2 + 1 < v.llm_calls <= 1 + 2 + 2 + 1 + 3  # assessment (K=1), one verdict, <= 3 sentences judged


def test_against_a_corpus_of_another_domain_the_verdict_is_not_enough_information(default_rag, data_dir, folate):
    claim, _ = folate
    films = [json.loads(line) for line in (data_dir / "hotpotqa" / "corpus.jsonl").open()][:200]
    corpus = [Passage(id=str(d["id"]), title=d.get("title", ""), text=d["text"]) for d in films]
    v = FactChecker(default_rag.lm, BM25Retriever.build(corpus), ONE_SEARCH).check(claim.claim)
    assert v.label == "nei" and v.searches == 1, (v.label, v.evidence[:1])


def test_a_claim_its_abstract_contradicts_is_refuted_under_the_tuned_bias(default_rag, data_dir):
    """SciFact train claim 77 ("Active Ly49Q prevents neutrophil polarization", CONTRADICT): refuted
    with its abstract as evidence on both backends (transformers bf16 and llama.cpp Q4_K_M; claims
    28 and 58 too, when this test was written); llama.cpp called it supported without the bias."""
    claim, abstract = _claim_and_abstract(data_dir, "77")
    config = ONE_SEARCH.model_copy(update={"label_bias": TUNED_BIAS})
    sentences = scifact_sentences(data_dir / "scifact" / "corpus_official.jsonl")
    v = FactChecker(default_rag.lm, BM25Retriever.build([abstract]), config, sentences=sentences).check(claim.claim)
    assert claim.label == "refuted" and v.label == "refuted", (v.label, v.confidence)
    assert [e.passage.id for e in v.evidence] == [abstract.id] and v.searches == 1
