"""Corpus statistics: Infini-gram indexes of the user's own corpus, the hosted API, a cache.

Nothing heavy is imported here; import the backend you need::

    from gatedrag.corpus.build import build_index       # gatedrag index build CORPUS.jsonl
    from gatedrag.corpus.local import LocalIndex         # in-process queries
    from gatedrag.corpus.client import InfiniGramClient  # hosted API or `gatedrag corpus serve`
    from gatedrag.corpus.cache import CachedCorpusStats  # LRU in front of either
"""

from gatedrag.corpus.base import CorpusStats

__all__ = ["CorpusStats"]
