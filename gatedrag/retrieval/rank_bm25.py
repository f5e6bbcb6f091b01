"""BM25 on rank-bm25 (the package named in the design card), behind the same protocol.

rank-bm25 scores every document in Python/numpy and has no on-disk format other than pickle, so
this backend is built in memory each time; prefer :class:`gatedrag.retrieval.bm25.BM25Retriever`
(bm25s) for anything but comparisons. Install with ``pip install gatedrag[rank-bm25]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gatedrag.errors import RetrievalError
from gatedrag.retrieval.tokenize import passage_text, words
from gatedrag.types import Hit, Passage


class RankBM25Retriever:
    """``rank_bm25.BM25Okapi`` over the same word tokens as the bm25s backend."""

    name = "rank_bm25"

    def __init__(self, passages: Sequence[Passage], *, k1: float = 1.5, b: float = 0.75):
        try:
            from rank_bm25 import BM25Okapi
        except ImportError:
            raise RetrievalError("rank-bm25 is not installed: pip install 'gatedrag[rank-bm25]'") from None
        self.passages = list(passages)
        self.bm25 = BM25Okapi(words([passage_text(p) for p in self.passages]), k1=k1, b=b)

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        out: list[list[Hit]] = []
        for tokens in words(list(queries)):
            if not tokens:
                out.append([])
                continue
            scores = self.bm25.get_scores(tokens)
            top = np.argsort(-scores, kind="stable")[: max(1, int(k))]
            hits = [int(i) for i in top if scores[i] > 0]
            out.append([Hit(passage=self.passages[i], score=float(scores[i]), rank=r) for r, i in enumerate(hits, 1)])
        return out


__all__ = ["RankBM25Retriever"]
