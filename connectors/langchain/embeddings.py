"""gatedrag's sentence embedder as LangChain ``Embeddings`` (for any LangChain vector store).

Example:
    >>> from gatedrag.connectors.langchain import GatedragEmbeddings
    >>> e = GatedragEmbeddings()                      # all-MiniLM-L6-v2 from its PyPI package
    >>> len(e.embed_query("Paris")), len(e.embed_documents(["a", "b"]))
    (384, 2)
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from gatedrag.errors import InputError
from gatedrag.retrieval.embed import Embedder


class GatedragEmbeddings(Embeddings):
    """An :class:`~gatedrag.retrieval.embed.Embedder` (default: MiniLM, unit-length vectors, so
    inner product = cosine similarity) behind LangChain's ``Embeddings`` interface."""

    def __init__(self, embedder: Embedder | None = None):
        if embedder is None:
            from gatedrag.retrieval.embed import MiniLMEmbedder

            embedder = MiniLMEmbedder()
        if not isinstance(embedder, Embedder):
            raise InputError(f"not a gatedrag embedder: {type(embedder).__name__}")
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if any(not isinstance(t, str) for t in texts):
            raise InputError("embed_documents takes a list of strings")
        return self.embedder.encode(texts).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        if not isinstance(text, str):
            raise InputError("embed_query takes a string")
        return self.embedder.encode([text])[0].tolist()


__all__ = ["GatedragEmbeddings"]
