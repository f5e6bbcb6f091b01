"""Re-ranking the passages a deep search has accumulated.

:class:`EmbeddingReranker` orders passages by the cosine similarity of their embedding to the
query's (range -1 to 1, higher = more relevant; the hits' ``score`` becomes that similarity).

Example:
    >>> from gatedrag.retrieval.embed import MiniLMEmbedder
    >>> from gatedrag.types import Hit, Passage
    >>> hits = [Hit(passage=Passage(id="b", text="Berlin is in Germany."), score=9.0, rank=1),
    ...         Hit(passage=Passage(id="p", text="Paris is the capital of France."), score=1.0, rank=2)]
    >>> [h.passage.id for h in EmbeddingReranker(MiniLMEmbedder()).rerank("capital of France", hits)]
    ['p', 'b']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gatedrag.retrieval.embed import Embedder
from gatedrag.retrieval.tokenize import passage_text
from gatedrag.types import Hit


@runtime_checkable
class Reranker(Protocol):
    """Orders hits for a query, best first, re-numbering their ranks."""

    name: str

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]: ...


class EmbeddingReranker:
    """Cosine similarity of each passage (title and text) to the query, by ``embedder``."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.name = f"cosine({embedder.name})"

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        if not hits:
            return []
        vectors = self.embedder.encode([query, *(passage_text(h.passage) for h in hits)])
        sims = vectors[1:] @ vectors[0]
        order = sorted(range(len(hits)), key=lambda i: -float(sims[i]))
        return [hits[i].model_copy(update={"score": float(sims[i]), "rank": r}) for r, i in enumerate(order, 1)]


__all__ = ["EmbeddingReranker", "Reranker"]
