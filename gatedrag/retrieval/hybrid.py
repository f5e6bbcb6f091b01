"""Hybrid retrieval: several retrievers' rankings merged by reciprocal rank fusion (RRF,
Cormack et al. 2009): a passage scores ``sum(w / (c + rank))`` over the rankings it appears in
(unitless, higher = more relevant; at most ``sum(w) / (c + 1)``).

Example:
    >>> from gatedrag.types import Hit, Passage
    >>> def ranking(*ids):
    ...     return [Hit(passage=Passage(id=i, text=i), score=1.0, rank=r) for r, i in enumerate(ids, 1)]
    >>> fused = reciprocal_rank_fusion([ranking("a", "b", "c"), ranking("b", "d")], k=3)
    >>> [h.passage.id for h in fused], [h.rank for h in fused]
    (['b', 'a', 'd'], [1, 2, 3])
"""

from __future__ import annotations

from collections.abc import Sequence

from gatedrag.retrieval.base import Retriever
from gatedrag.types import Hit


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hit]], *, k: int, c: float = 60.0, weights: Sequence[float] | None = None
) -> list[Hit]:
    """The top ``k`` passages of the fused ranking (ties keep the order of first appearance)."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    passages = {}
    for ranking, w in zip(rankings, weights):
        for hit in ranking:
            pid = hit.passage.id
            passages.setdefault(pid, hit.passage)
            scores[pid] = scores.get(pid, 0.0) + w / (c + hit.rank)
    order = sorted(scores, key=lambda pid: -scores[pid])  # stable: first appearance breaks ties
    return [Hit(passage=passages[pid], score=scores[pid], rank=r) for r, pid in enumerate(order[:k], 1)]


class HybridRetriever:
    """Each component retrieves ``depth`` passages a query (in one batch each); the top ``k`` of
    their reciprocal rank fusion are returned.

    >>> from gatedrag.retrieval.bm25 import BM25Retriever
    >>> from gatedrag.types import Passage
    >>> bm25 = BM25Retriever.build([Passage(id="1", text="Paris is in France."), Passage(id="2", text="Rome.")])
    >>> HybridRetriever([bm25, bm25]).retrieve(["Paris"], k=1)[0][0].passage.id
    '1'
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        depth: int = 20,
        c: float = 60.0,
        weights: Sequence[float] | None = None,
    ):
        if not retrievers:
            raise ValueError("a hybrid retriever needs at least one component")
        self.retrievers = list(retrievers)
        self.depth = depth
        self.c = c
        self.weights = list(weights) if weights is not None else None
        self.name = "hybrid(" + "+".join(r.name for r in self.retrievers) + ")"

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if not queries:
            return []
        depth = max(k, self.depth)
        per_retriever = [r.retrieve(list(queries), depth) for r in self.retrievers]
        return [
            reciprocal_rank_fusion([hits[q] for hits in per_retriever], k=k, c=self.c, weights=self.weights)
            for q in range(len(queries))
        ]


__all__ = ["HybridRetriever", "reciprocal_rank_fusion"]
