"""Threads through one pipeline answer as serial use does (the benchmark runs 8 threads x 50)."""

from __future__ import annotations

import concurrent.futures

from gatedrag.config import PipelineConfig
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus


def signature(answer):
    return answer.text, answer.counts.retrievals, [s.query for s in answer.steps if s.kind == "retrieval"]


def test_four_threads_through_one_pipeline_give_the_serial_answers(tiny_lm):
    cfg = PipelineConfig.model_validate(
        {"decoding": {"max_answer_tokens": 16, "batch_size": 1}, "gate": {"rules": [{"signal": "token_rag"}]}}
    )
    rag = GatedRAG(tiny_lm, BM25Retriever.build(load_corpus(demo_corpus_path())), cfg)
    questions = [f"Who directed film number {i}?" for i in range(12)]
    serial = [signature(rag.ask(q)) for q in questions]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: signature(rag.ask(q)), questions))
    assert together == serial
    assert any(retrievals for _, retrievals, _ in serial)  # the threads also shared the retriever
