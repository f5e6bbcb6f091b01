"""A fixed-seed subset of the fuzzing campaign (``benchmarks/bench_reliability.py fuzz`` tries
10,000 inputs an entry): every entry answers or refuses with a typed error, never crashes; the
first crash fails the test with the smallest input hypothesis finds."""

from __future__ import annotations

import pytest

from gatedrag.config import PipelineConfig
from gatedrag.evals import fuzz_entries as entries
from gatedrag.evals.fuzz import fuzz
from gatedrag.pipeline import GatedRAG

N = 120
SEED = 20261202


def check(entry, n: int = N) -> None:
    report = fuzz(entry, n=n, seed=SEED, stop_on_crash=True)
    assert report.tried == n and report.crashes == 0
    assert report.refused, "no input was refused: the generator does not reach the checks"


@pytest.mark.parametrize(
    "build",
    [entries.config_file_entry, entries.corpus_file_entry, entries.claims_file_entry, entries.dataset_file_entry],
)
def test_files(build, tmp_path):
    check(build(tmp_path))


def test_python_api(tiny_lm):
    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus

    cfg = PipelineConfig.model_validate({"decoding": {"max_answer_tokens": 6, "batch_size": 4}})
    rag = GatedRAG(tiny_lm, BM25Retriever.build(load_corpus(demo_corpus_path())), cfg)
    check(entries.api_entry(rag), n=60)


def test_openai_server(tiny_lm):
    from fastapi.testclient import TestClient

    from gatedrag.serve.app import ServeLimits, create_app

    app = create_app(tiny_lm, model_name="tiny", limits=ServeLimits(max_tokens=8, max_request_bytes=20_000))
    with TestClient(app, raise_server_exceptions=False) as client:
        check(entries.serve_entry(client, "tiny"), n=80)


@pytest.mark.enable_socket
def test_corpus_server(tmp_path):
    pytest.importorskip("infini_gram.engine")
    from gatedrag.corpus.build import build_index
    from gatedrag.corpus.server import make_server
    from gatedrag.retrieval.corpus import demo_corpus_path

    build_index(demo_corpus_path(), tmp_path / "demo", tokenizer="gpt2")
    server = make_server(tmp_path / "demo", port=0)
    server.start_background()
    try:
        check(entries.corpus_server_entry(server.server_address[:2]), n=80)
    finally:
        server.shutdown()
        server.server_close()


def test_cli(tmp_path, tiny_lm, monkeypatch):
    import gatedrag.factory

    monkeypatch.setattr(gatedrag.factory, "build_model", lambda *a, **k: tiny_lm)  # no real model loads
    check(entries.cli_entry(tmp_path), n=60)
