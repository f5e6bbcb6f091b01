"""Build the configured corpus-statistics backend (embedded default: a local Infini-gram index of
the retrieval corpus, built on first use and kept in the cache, behind an LRU cache)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gatedrag.config import BackendLimits, CorpusStatsConfig
from gatedrag.corpus.base import CorpusStats
from gatedrag.corpus.cache import CachedCorpusStats
from gatedrag.corpus.guard import GuardedCorpusStats
from gatedrag.errors import CorpusIndexError


def build_corpus_stats(
    config: CorpusStatsConfig,
    corpus: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    limits: BackendLimits | None = None,
) -> CorpusStats:
    """Open (or build once) the configured backend; errors are typed and raised here, at load time.
    Each query to it is limited by ``limits`` (default :class:`BackendLimits`; a cached answer
    is not asked again)."""
    limits = limits or BackendLimits()
    if config.backend == "api":
        from gatedrag.corpus.client import InfiniGramClient

        hosted = "api.infini-gram.io" in config.url
        backend: CorpusStats = InfiniGramClient(
            config.url,
            index=config.api_index,
            timeout=config.timeout_s,
            retries=config.retries,
            cooccurrence="cnf" if hosted else config.cooccurrence,
        )
        return CachedCorpusStats(GuardedCorpusStats(backend, limits), maxsize=config.cache_size)

    from gatedrag.corpus.build import build_index, default_corpus_index_dir
    from gatedrag.corpus.local import LocalIndex
    from gatedrag.retrieval.corpus import corpus_sha256

    index = config.index
    if index is None:
        index = default_corpus_index_dir(corpus_sha256(corpus), config.tokenizer)
        try:
            LocalIndex(index, tokenizer=config.tokenizer)
        except CorpusIndexError:  # missing or unfinished: build it (a different tokenizer is a new folder)
            if progress:
                progress(f"building the Infini-gram index of {corpus} (once)")
            build_index(corpus, index, tokenizer=config.tokenizer)
    if progress:
        progress(f"opening the corpus-statistics index {index}")
    local = LocalIndex(index, tokenizer=config.tokenizer, cooccurrence=config.cooccurrence)
    return CachedCorpusStats(GuardedCorpusStats(local, limits), maxsize=config.cache_size)


__all__ = ["build_corpus_stats"]
