"""Retrievers both ways: gatedrag's BM25 / dense / hybrid retrievers as LangChain retrievers, and any
LangChain retriever or vector store as gatedrag's retriever.

Example:
    >>> from gatedrag.connectors.langchain import GatedragRetriever, LangChainRetriever
    >>> lc = GatedragRetriever(k=2)                      # bm25s over the demo corpus
    >>> docs = lc.invoke("Who wrote Pride and Prejudice?")
    >>> len(docs), sorted(docs[0].metadata)[:3]
    (2, ['id', 'rank', 'score'])
    >>> back = LangChainRetriever(lc)                      # and back: the protocol the pipeline reads
    >>> [h.rank for h in back.retrieve(["Jane Austen"], k=2)[0]]
    [1, 2]
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field, PrivateAttr

from gatedrag.config import RetrievalConfig
from gatedrag.errors import BackendError, InputError, RetrievalError
from gatedrag.retrieval.base import Retriever
from gatedrag.types import Hit

from .documents import document_score, to_document, to_passage

_GIVEN: contextvars.ContextVar[Retriever | None] = contextvars.ContextVar("gatedrag_given_retriever", default=None)
"""The retriever :meth:`GatedragRetriever.from_retriever` hands to the instance it constructs."""


class GatedragRetriever(BaseRetriever):
    """gatedrag's retriever (``retrieval.backend``: bm25s, rank_bm25, dense or hybrid, over
    ``retrieval.corpus``) as a LangChain ``BaseRetriever``; ``k`` documents a query (``invoke(q,
    k=5)`` overrides it). Each document's metadata holds the passage's id, title, score and rank.
    :meth:`from_retriever` wraps a retriever already built (an index loaded once, shared).

    Example:
        >>> from gatedrag.config import RetrievalConfig
        >>> r = GatedragRetriever(retrieval=RetrievalConfig(backend="bm25s"), k=1)
        >>> r.invoke("Eiffel Tower", k=2)[1].metadata["rank"]
        2
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    """What to retrieve from and how (the ``retrieval`` section of a gatedrag config)."""
    k: int = Field(default=3, ge=1, le=100)
    """Documents returned a query."""
    _retriever: Retriever | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        given = _GIVEN.get()
        if given is not None:
            self._retriever = given
        else:
            from gatedrag.retrieval.factory import build_retriever

            self._retriever = build_retriever(self.retrieval)

    @classmethod
    def from_retriever(cls, retriever: Retriever, *, k: int = 3, **fields: Any) -> GatedragRetriever:
        """Wrap a gatedrag retriever that is already built (``retrieval`` then only describes it)."""
        if not isinstance(retriever, Retriever):
            raise InputError(f"not a gatedrag retriever: {type(retriever).__name__}")
        token = _GIVEN.set(retriever)
        try:
            return cls(k=k, **fields)
        finally:
            _GIVEN.reset(token)

    @property
    def retriever(self) -> Retriever:
        """The gatedrag retriever behind this one."""
        assert self._retriever is not None
        return self._retriever

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        if not isinstance(query, str) or not query.strip():
            raise InputError("a retrieval query must be a non-empty string")
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        hits = self.retriever.retrieve([query], k)[0]
        return [to_document(h.passage, score=h.score, rank=h.rank) for h in hits]


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="gatedrag-lc-retriever")


class LangChainRetriever:
    """Any LangChain ``BaseRetriever`` or ``VectorStore`` as gatedrag's retriever (the
    :class:`~gatedrag.retrieval.base.Retriever` protocol).

    Each query is one ``invoke`` with ``k`` passed on (a retriever that takes no ``k`` gets its
    documents cut to ``k``); a document's metadata is kept on the passage, its score is its own
    (``metadata["score"]``) or ``1 / rank``. A retriever that raises, returns something other than
    a list of ``Document``\\ s or takes longer than ``timeout_s`` raises :class:`RetrievalError`, which
    the pipeline turns into a degraded, labelled retrieval step. Callbacks are not passed to the
    wrapped retriever: the gated runnable reports one retriever run per retrieval from the trace.

    Example:
        >>> from langchain_core.documents import Document
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> store = InMemoryVectorStore.from_documents(
        ...     [Document(page_content="Paris is in France.", id="a", metadata={"title": "Paris"})],
        ...     DeterministicFakeEmbedding(size=16))
        >>> LangChainRetriever(store).retrieve(["France"], k=1)[0][0].passage.title
        'Paris'
    """

    def __init__(self, retriever: BaseRetriever | VectorStore, *, name: str | None = None, timeout_s: float = 60.0):
        if isinstance(retriever, VectorStore):
            retriever = retriever.as_retriever()
        if not isinstance(retriever, BaseRetriever):
            raise InputError(f"need a langchain BaseRetriever or VectorStore, got {type(retriever).__name__}")
        if timeout_s <= 0:
            raise InputError("timeout_s must be positive")
        self.langchain = retriever
        self.name = name or f"langchain:{retriever.get_name()}"
        self.timeout_s = timeout_s

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return [self._one(q, k) for q in queries]

    def _one(self, query: str, k: int) -> list[Hit]:
        future = _POOL.submit(self.langchain.invoke, query, {"callbacks": None}, k=k)
        try:
            docs = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RetrievalError(f"{self.name} did not answer within {self.timeout_s:g} s") from None
        except Exception as err:
            raise RetrievalError(f"{self.name} failed: {type(err).__name__}: {err}") from err
        if not isinstance(docs, list):
            raise RetrievalError(f"{self.name} returned a {type(docs).__name__}, not a list of Documents")
        try:
            passages = [to_passage(d) for d in docs[:k]]
        except BackendError as err:
            raise RetrievalError(f"{self.name}: {err}") from None
        return [Hit(passage=p, score=document_score(d, i), rank=i) for i, (p, d) in enumerate(zip(passages, docs), 1)]


__all__ = ["GatedragRetriever", "LangChainRetriever"]
