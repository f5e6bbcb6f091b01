"""The corpus-statistics protocol every backend (local index, HTTP API, cache) implements.

Counts are occurrences of token n-grams in the indexed corpus, word-initial and case-sensitive
(see :mod:`gatedrag.corpus.tokenizer`). A co-occurrence of terms A, B counts the occurrences of the
rarer term with a match of every other term within ``window`` tokens, inside one document
(Infini-gram CNF semantics): a window much longer than a document pulls in neighbouring documents
and such ranges are dropped, so the default window is about one passage.

Example (any backend)::

    stats.count("Ed Wood").count                      # -> int
    stats.cooccurrence(["Ed Wood", "Tim Burton"]).count
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gatedrag.errors import CorpusQueryError
from gatedrag.types import CorpusCount

API_MAX_CHARS = 1000
API_MAX_TOKENS = 500
API_MAX_CLAUSES = 4
API_MAX_TERMS_PER_CLAUSE = 4
API_MAX_CLAUSE_FREQ = 500_000
API_MAX_DIFF_TOKENS = 1000


@runtime_checkable
class CorpusStats(Protocol):
    """Counts of phrases and co-occurrences in a corpus."""

    name: str

    def total_tokens(self) -> int:
        """Tokens in the corpus (the denominator of every rate)."""
        ...

    def count(self, phrase: str) -> CorpusCount:
        """Occurrences of ``phrase``."""
        ...

    def cooccurrence(
        self, terms: Sequence[str], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> CorpusCount:
        """Occurrences of the rarest term with every other term within ``window`` tokens."""
        ...


def check_terms(terms: Sequence[str], *, max_terms: int = API_MAX_CLAUSES) -> list[str]:
    """Strip and validate query terms; raise :class:`CorpusQueryError` naming the problem."""
    if isinstance(terms, str):
        raise CorpusQueryError("give the co-occurring terms as a list of strings, not one string")
    cleaned = []
    for term in terms:
        if not isinstance(term, str):
            raise CorpusQueryError(f"a corpus query term must be a string, got {type(term).__name__}")
        text = " ".join(term.split())
        if not text:
            raise CorpusQueryError("a corpus query term is empty")
        if len(text) > API_MAX_CHARS:
            raise CorpusQueryError(f"a corpus query term is {len(text)} characters; the limit is {API_MAX_CHARS}")
        cleaned.append(text)
    if not cleaned:
        raise CorpusQueryError("a co-occurrence query needs at least one term")
    if len(cleaned) > max_terms:
        raise CorpusQueryError(f"a co-occurrence query takes at most {max_terms} terms, got {len(cleaned)}")
    return cleaned


__all__ = [
    "API_MAX_CHARS",
    "API_MAX_CLAUSES",
    "API_MAX_CLAUSE_FREQ",
    "API_MAX_DIFF_TOKENS",
    "API_MAX_TERMS_PER_CLAUSE",
    "API_MAX_TOKENS",
    "CorpusStats",
    "check_terms",
]
