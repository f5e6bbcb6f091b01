"""Dense retrieval: an exact inner-product FAISS index (``IndexFlatIP``) over unit-length passage
embeddings, saved in FAISS's own format beside ``passages.jsonl`` and a manifest.

Scores are cosine similarities (-1 to 1, higher = more relevant). Exact search is the right choice
at the scale of these corpora (≤ 100 k passages: ~9 ms a query on one thread, ``docs/stack.md``);
queries run on one OpenMP thread by default, which is faster than two on a 2-core machine.

Example:
    >>> from gatedrag.retrieval.dense import DenseRetriever
    >>> from gatedrag.retrieval.embed import MiniLMEmbedder
    >>> from gatedrag.types import Passage
    >>> r = DenseRetriever.build([Passage(id="1", text="Paris is the capital of France."),
    ...                           Passage(id="2", text="Berlin is a city in Germany.")], MiniLMEmbedder())
    >>> r.retrieve(["Which city is France's capital?"], k=1)[0][0].passage.id
    '1'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatedrag.errors import ModelNotInstalledError, RetrievalIndexError
from gatedrag.lm.packaged import default_cache_dir
from gatedrag.retrieval.corpus import corpus_sha256, load_corpus
from gatedrag.retrieval.embed import Embedder
from gatedrag.retrieval.store import (
    MANIFEST,
    atomic_directory,
    read_manifest,
    read_passages,
    recover_directory,
    write_manifest,
    write_passages,
)
from gatedrag.retrieval.tokenize import passage_text
from gatedrag.types import Hit, Passage

INDEX_FILE = "faiss.index"
_FORMAT = 1
_BACKEND = "faiss-flat-ip"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ModelNotInstalledError("dense retrieval needs faiss: pip install 'gatedrag[dense]'") from None
    return faiss


class DenseRetriever:
    """Top-k passages by cosine similarity of their embeddings to the query's."""

    name = "faiss"

    def __init__(
        self, index: Any, passages: list[Passage], embedder: Embedder, *, corpus_sha256: str = "", threads: int = 1
    ):
        if index.ntotal != len(passages):
            raise RetrievalIndexError(f"FAISS index holds {index.ntotal} vectors for {len(passages)} passages")
        if index.d != embedder.dim:
            raise RetrievalIndexError(f"FAISS index has dimension {index.d}, the embedder {embedder.dim}")
        self.index = index
        self.passages = passages
        self.embedder = embedder
        self.corpus_sha256 = corpus_sha256
        self.threads = threads

    @classmethod
    def build(
        cls,
        passages: Sequence[Passage],
        embedder: Embedder,
        *,
        corpus_sha256: str = "",
        threads: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> DenseRetriever:
        """Embed ``passages`` (title and text, as BM25 indexes them) and index them in memory."""
        faiss = _faiss()
        passages = list(passages)
        vectors = embedder.encode([passage_text(p) for p in passages], progress=progress)
        index = faiss.IndexFlatIP(embedder.dim)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, passages, embedder, corpus_sha256=corpus_sha256, threads=threads)

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if not queries:
            return []
        faiss = _faiss()
        k = max(1, min(int(k), len(self.passages)))
        vectors = self.embedder.encode(list(queries))
        faiss.omp_set_num_threads(self.threads)
        scores, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return [
            [
                Hit(passage=self.passages[int(i)], score=float(s), rank=rank)
                for rank, (i, s) in enumerate(((i, s) for i, s in zip(row_ids, row_scores) if i >= 0), 1)
            ]
            for row_ids, row_scores in zip(ids, scores)
        ]

    # -- persistence ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the index atomically (FAISS's own format, no pickle)."""
        faiss = _faiss()
        final = Path(directory)
        with atomic_directory(final) as tmp:
            faiss.write_index(self.index, str(tmp / INDEX_FILE))
            write_passages(tmp, self.passages)
            write_manifest(
                tmp,
                {
                    "format": _FORMAT,
                    "backend": _BACKEND,
                    "faiss_version": faiss.__version__,
                    "embedder": self.embedder.name,
                    "dim": self.embedder.dim,
                    "corpus_sha256": self.corpus_sha256,
                    "passages": len(self.passages),
                },
            )
        return final

    @classmethod
    def load(
        cls, directory: str | Path, embedder: Embedder, *, expect_sha256: str | None = None, threads: int = 1
    ) -> DenseRetriever:
        """Open a saved index; refuse one that is missing, partial, built from another corpus or
        with another embedder."""
        faiss = _faiss()
        d = Path(directory)
        manifest = read_manifest(d, backend=_BACKEND, version=_FORMAT, expect_sha256=expect_sha256)
        if manifest.get("embedder") != embedder.name:
            raise RetrievalIndexError(
                f"dense index in {d} was built with {manifest.get('embedder')}, not {embedder.name}; rebuild it"
            )
        passages = read_passages(d, manifest)
        try:
            index = faiss.read_index(str(d / INDEX_FILE))
        except RuntimeError as err:
            raise RetrievalIndexError(f"cannot read the FAISS index in {d}: {err}; rebuild it") from None
        return cls(index, passages, embedder, corpus_sha256=manifest.get("corpus_sha256", ""), threads=threads)

    @classmethod
    def from_corpus(
        cls,
        corpus: str | Path,
        embedder: Embedder,
        *,
        index_dir: str | Path | None = None,
        rebuild: bool = False,
        threads: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> DenseRetriever:
        """Load the dense index of ``corpus`` (default: in the cache), embedding the corpus once if
        the index is absent, stale, damaged or made by another embedder."""
        digest = corpus_sha256(corpus)
        directory = Path(index_dir) if index_dir else default_dense_index_dir(digest, embedder.name)
        recover_directory(directory)  # a build killed mid-swap: its previous index comes back
        if not rebuild and (directory / MANIFEST).exists():
            try:
                return cls.load(directory, embedder, expect_sha256=digest, threads=threads)
            except RetrievalIndexError:
                pass  # stale or damaged: rebuild below
        retriever = cls.build(load_corpus(corpus), embedder, corpus_sha256=digest, threads=threads, progress=progress)
        retriever.save(directory)
        return retriever


def default_dense_index_dir(corpus_digest: str, embedder_name: str) -> Path:
    """Where the dense index of a corpus is kept by default (beside its BM25 index)."""
    import hashlib

    model = hashlib.sha256(embedder_name.encode()).hexdigest()[:8]
    return default_cache_dir() / "indexes" / f"faiss-{corpus_digest[:16]}-{model}"


__all__ = ["DenseRetriever", "default_dense_index_dir"]
