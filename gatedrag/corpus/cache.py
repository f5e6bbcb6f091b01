"""An LRU cache in front of any corpus-statistics backend.

Entities repeat across the sentences and questions of a run (and every co-occurrence query of a
sentence re-counts its head), so counts are cached by query. Failures are not cached: the next
call asks the backend again. Thread-safe.

Example:
    >>> from gatedrag.corpus.cache import CachedCorpusStats
    >>> from gatedrag.types import CorpusCount
    >>> class Fake:
    ...     name = "fake"
    ...     calls = 0
    ...     def total_tokens(self): return 100
    ...     def count(self, phrase):
    ...         Fake.calls += 1
    ...         return CorpusCount(terms=[phrase], count=len(phrase))
    ...     def cooccurrence(self, terms, *, window=None, max_clause_freq=None):
    ...         return CorpusCount(terms=list(terms), count=0, window=window)
    >>> stats = CachedCorpusStats(Fake(), maxsize=10)
    >>> stats.count("Ed Wood").count, stats.count("Ed Wood").count, Fake.calls
    (7, 7, 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from gatedrag.corpus.base import CorpusStats, check_terms
from gatedrag.types import CorpusCount


class CachedCorpusStats:
    """``backend`` behind an LRU cache of ``maxsize`` results."""

    def __init__(self, backend: CorpusStats, *, maxsize: int = 100_000):
        if maxsize < 1:
            raise ValueError(f"maxsize must be positive, got {maxsize}")
        self.backend, self.maxsize = backend, maxsize
        self.name = f"cached:{backend.name}"
        self._cache: OrderedDict[Hashable, CorpusCount] = OrderedDict()
        self._lock = threading.Lock()
        self._total: int | None = None
        self.hits = self.misses = 0

    def _get(self, key: Hashable) -> CorpusCount | None:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return value

    def _put(self, key: Hashable, value: CorpusCount) -> CorpusCount:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return value

    def total_tokens(self) -> int:
        if self._total is None:
            self._total = self.backend.total_tokens()
        return self._total

    def count(self, phrase: str) -> CorpusCount:
        key = ("count", *check_terms([phrase], max_terms=1))
        cached = self._get(key)
        return cached if cached is not None else self._put(key, self.backend.count(phrase))

    def cooccurrence(
        self, terms: Sequence[str], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> CorpusCount:
        key = ("cooc", tuple(check_terms(terms)), window, max_clause_freq)
        cached = self._get(key)
        if cached is not None:
            return cached
        return self._put(key, self.backend.cooccurrence(terms, window=window, max_clause_freq=max_clause_freq))

    def __len__(self) -> int:
        return len(self._cache)


__all__ = ["CachedCorpusStats"]
