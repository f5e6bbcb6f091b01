"""Corpus statistics that answer in time or fail clearly: every call to a backend limited and
retried (:func:`gatedrag.guard.guarded`) and its result checked.

A hung local index or server costs at most ``limits.timeout_s`` a query
(:class:`~gatedrag.errors.BackendTimeout`); an answer that is not a :class:`CorpusCount` is a
:class:`~gatedrag.errors.CorpusBackendError`. The signals that read the statistics turn either into
a value with a note (the answer goes on without it, labelled).

Example:
    >>> from gatedrag.config import BackendLimits
    >>> from gatedrag.types import CorpusCount
    >>> class Broken:
    ...     name = "broken"
    ...     def total_tokens(self): return 100
    ...     def count(self, phrase): return {"count": 3}
    ...     def cooccurrence(self, terms, *, window=None, max_clause_freq=None):
    ...         return CorpusCount(terms=list(terms), count=0)
    >>> stats = GuardedCorpusStats(Broken(), BackendLimits(retries=0))
    >>> stats.cooccurrence(["Ed Wood", "Tim Burton"]).count
    0
    >>> stats.count("Ed Wood")
    Traceback (most recent call last):
    ...
    gatedrag.errors.CorpusBackendError: the corpus statistics 'broken' returned dict, not a CorpusCount
"""

from __future__ import annotations

from collections.abc import Sequence

from gatedrag.config import BackendLimits
from gatedrag.corpus.base import CorpusStats
from gatedrag.errors import CorpusBackendError
from gatedrag.guard import guarded
from gatedrag.types import CorpusCount


class GuardedCorpusStats:
    """``backend`` with every call limited by ``limits`` and its result checked (a malformed
    answer is retried like an error)."""

    def __init__(self, backend: CorpusStats, limits: BackendLimits):
        self.backend, self.limits = backend, limits
        self.name = backend.name
        self._what = f"the corpus statistics {backend.name!r}"

    def total_tokens(self) -> int:
        def checked() -> int:
            total = self.backend.total_tokens()
            if not isinstance(total, int) or isinstance(total, bool) or total < 0:
                raise CorpusBackendError(f"{self._what} returned {total!r} as its token count")
            return total

        return guarded(checked, self.limits, self._what)

    def count(self, phrase: str) -> CorpusCount:
        return guarded(lambda: self._checked(self.backend.count(phrase)), self.limits, self._what)

    def cooccurrence(
        self, terms: Sequence[str], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> CorpusCount:
        return guarded(
            lambda: self._checked(self.backend.cooccurrence(terms, window=window, max_clause_freq=max_clause_freq)),
            self.limits,
            self._what,
        )

    def _checked(self, result: object) -> CorpusCount:
        if not isinstance(result, CorpusCount):
            raise CorpusBackendError(f"{self._what} returned {type(result).__name__}, not a CorpusCount")
        return result


__all__ = ["GuardedCorpusStats"]
