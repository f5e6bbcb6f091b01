"""Build the configured retriever (embedded default: bm25s over the demo corpus)."""

from __future__ import annotations

from collections.abc import Callable

from gatedrag.config import RetrievalConfig
from gatedrag.retrieval.base import Retriever
from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus


def build_retriever(config: RetrievalConfig, *, progress: Callable[[str], None] | None = None) -> Retriever:
    """Load (or build once and save) the index of the configured corpus."""
    corpus = config.corpus or demo_corpus_path()
    if progress:
        progress(f"opening the {config.backend} index of {corpus}")
    if config.backend == "rank_bm25":
        from gatedrag.retrieval.rank_bm25 import RankBM25Retriever

        return RankBM25Retriever(load_corpus(corpus))
    from gatedrag.retrieval.bm25 import BM25Retriever

    return BM25Retriever.from_corpus(corpus, index_dir=config.index_dir)


__all__ = ["build_retriever"]
