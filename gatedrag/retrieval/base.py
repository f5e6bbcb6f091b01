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

import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gatedrag.config import BackendLimits
from gatedrag.errors import BackendTimeout, RetrievalError
from gatedrag.guard import guarded
from gatedrag.types import Hit


@runtime_checkable
class Retriever(Protocol):
    """Anything that maps queries to ranked passages."""

    name: str

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top-``k`` hits for each query, best first (fewer when fewer passages match)."""
        ...


def check_hits(result: object, queries: int) -> list[list[Hit]]:
    """``result`` if it is one list of :class:`Hit` per query, else :class:`RetrievalError` saying
    what is wrong with it (a retriever's malformed or partial answer is a failure, not an answer)."""
    if not isinstance(result, Sequence) or isinstance(result, str | bytes):
        raise RetrievalError(f"the retriever returned {type(result).__name__}, not a list of hit lists")
    if len(result) != queries:
        raise RetrievalError(f"the retriever returned {len(result)} hit lists for {queries} queries")
    for hits in result:
        if not isinstance(hits, Sequence) or isinstance(hits, str | bytes):
            raise RetrievalError(f"the retriever returned {type(hits).__name__} for a query, not a list of hits")
        bad = next((h for h in hits if not isinstance(h, Hit)), None)
        if bad is not None:
            raise RetrievalError(f"the retriever returned {type(bad).__name__} among a query's hits, not a Hit")
    return [list(hits) for hits in result]  # type: ignore[union-attr]


def retrieve_each(
    retriever: Retriever,
    queries: Sequence[str],
    k: int,
    *,
    limits: BackendLimits | None = None,
    budget_s: float | None = None,
) -> list[list[Hit] | Exception]:
    """``retriever.retrieve(queries, k)`` in one call; if that raises, each query alone, so that one
    failing query costs only its own hits (its entry is the exception). Every call is guarded
    (:func:`gatedrag.guard.guarded`: ``limits``, default :class:`BackendLimits`, and at most
    ``budget_s`` seconds in all) and its result checked (:func:`check_hits`); a call that timed out
    fails every query of it (asking each alone would wait again), and each query alone is asked
    once (the batch call was the one retried)."""
    limits = limits or BackendLimits()
    total = limits.timeout_s if budget_s is None else min(limits.timeout_s, budget_s)
    end = time.monotonic() + total
    what = f"the retriever {retriever.name!r}"

    def ask(group: list[str], limits: BackendLimits) -> list[list[Hit]]:
        def checked() -> list[list[Hit]]:  # a malformed answer is retried like an error
            return check_hits(retriever.retrieve(group, k), len(group))

        return guarded(checked, limits, what, budget_s=end - time.monotonic())

    try:
        return list(ask(list(queries), limits))
    except BackendTimeout as err:
        return [err for _ in queries]
    except Exception:
        out: list[list[Hit] | Exception] = []
        alone = limits.model_copy(update={"retries": 0})  # the batch call was retried already
        for q in queries:
            try:
                out.append(ask([q], alone)[0])
            except Exception as err:
                out.append(err)
        return out


__all__ = ["Retriever", "check_hits", "retrieve_each"]
