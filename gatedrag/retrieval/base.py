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


def retrieve_each(retriever: Retriever, queries: Sequence[str], k: int) -> list[list[Hit] | Exception]:
    """``retriever.retrieve(queries, k)`` in one call; if that raises, each query alone, so that one
    failing query costs only its own hits (its entry is the exception)."""
    try:
        return list(retriever.retrieve(queries, k))
    except Exception:
        out: list[list[Hit] | Exception] = []
        for q in queries:
            try:
                out.append(retriever.retrieve([q], k)[0])
            except Exception as err:
                out.append(err)
        return out


__all__ = ["Retriever", "retrieve_each"]
