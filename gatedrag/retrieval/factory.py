"""Build the configured retriever (embedded default: bm25s over the demo corpus)."""

from __future__ import annotations

from collections.abc import Callable

from gatedrag.config import RetrievalConfig
from gatedrag.retrieval.base import Retriever
from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus
from gatedrag.retrieval.embed import Embedder


def build_embedder(config: RetrievalConfig) -> Embedder:
    """The embedding model of ``config.dense`` (loaded now: a few seconds)."""
    from gatedrag.retrieval.embed import MiniLMEmbedder

    return MiniLMEmbedder(batch_size=config.dense.batch_size)


def build_retriever(
    config: RetrievalConfig,
    *,
    progress: Callable[[str], None] | None = None,
    embedder: Embedder | None = None,
    embed_progress: Callable[[int, int], None] | None = None,
) -> Retriever:
    """Load (or build once and save) the index of the configured corpus; ``embedder`` replaces the
    configured embedding model of a dense or hybrid backend, ``embed_progress(done, total)`` is told
    how far the embedding of a corpus has come when a dense index has to be built."""
    corpus = config.corpus or demo_corpus_path()
    if progress:
        progress(f"opening the {config.backend} index of {corpus}")
    if config.backend == "rank_bm25":
        from gatedrag.retrieval.rank_bm25 import RankBM25Retriever

        return RankBM25Retriever(load_corpus(corpus))
    from gatedrag.retrieval.bm25 import BM25Retriever

    if config.backend == "bm25s":
        return BM25Retriever.from_corpus(corpus, index_dir=config.index_dir)
    from gatedrag.retrieval.dense import DenseRetriever

    dense = DenseRetriever.from_corpus(
        corpus,
        embedder or build_embedder(config),
        index_dir=config.dense.index_dir,
        threads=config.dense.threads,
        progress=embed_progress,
    )
    if config.backend == "dense":
        return dense
    from gatedrag.retrieval.hybrid import HybridRetriever

    bm25 = BM25Retriever.from_corpus(corpus, index_dir=config.index_dir)
    fusion = config.fusion
    return HybridRetriever([bm25, dense], depth=fusion.depth, c=fusion.c, weights=[1.0, fusion.dense_weight])


__all__ = ["build_embedder", "build_retriever"]
