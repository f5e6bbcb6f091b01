"""The retriever protocol.

Example:
    >>> from gatedrag.retrieval.bm25 import BM25Retriever
    >>> from gatedrag.types import Passage
    >>> r = BM25Retriever.build([Passage(id="1", text="Paris is the capital of France."),
    ...                          Passage(id="2", text="Berlin is in Germany.")])
    >>> r.retrieve(["capital of France"], k=1)[0][0].passage.id
    '1'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gatedrag.types import Hit


@runtime_checkable
class Retriever(Protocol):
    """Anything that maps queries to ranked passages."""

    name: str

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top-``k`` hits for each query, best first (fewer when fewer passages match)."""
        ...


__all__ = ["Retriever"]
