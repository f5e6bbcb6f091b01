"""Slow: a batch of real HotpotQA questions through the default model (run with ``pytest -m slow``)."""

import pytest

from gatedrag.evals.datasets import corpus_path, load_dataset
from gatedrag.evals.metrics import exact_match
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_gated_batch_on_hotpotqa_beats_closed_book(default_rag, data_dir):
    examples = load_dataset("hotpotqa", data_dir, limit=16)
    retriever = BM25Retriever.from_corpus(corpus_path("hotpotqa", data_dir))
    gated = GatedRAG(default_rag.lm, retriever, default_rag.config).batch([e.question for e in examples])
    closed = GatedRAG(default_rag.lm, None, default_rag.config).batch([e.question for e in examples])
    assert [a.question for a in gated] == [e.question for e in examples]
    em_gated = sum(exact_match(a.answer, e.answers) for a, e in zip(gated, examples))
    em_closed = sum(exact_match(a.answer, e.answers) for a, e in zip(closed, examples))
    assert em_gated >= em_closed
    for a in gated:
        assert a.counts.retrievals <= default_rag.config.policy.max_retrievals
        assert a.counts.retrievals == sum(1 for s in a.steps if s.kind == "retrieval" and s.passages)
        assert not a.degraded
