"""BM25 retrieval on bm25s, with an index saved in bm25s' own format (numpy + JSON, no pickle).

Example:
    >>> from gatedrag.retrieval.bm25 import BM25Retriever
    >>> from gatedrag.retrieval.corpus import demo_corpus_path
    >>> r = BM25Retriever.from_corpus(demo_corpus_path())
    >>> hits = r.retrieve(["Who directed the film Jaws?"], k=3)[0]
    >>> len(hits)
    3
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from gatedrag.errors import CorpusError, RetrievalIndexError
from gatedrag.lm.packaged import default_cache_dir
from gatedrag.retrieval.corpus import corpus_sha256, load_corpus
from gatedrag.retrieval.store import (
    MANIFEST,
    atomic_directory,
    read_manifest,
    read_passages,
    recover_directory,
    write_manifest,
    write_passages,
)
from gatedrag.retrieval.tokenize import STOPWORDS, passage_text, words
from gatedrag.types import Hit, Passage

_FORMAT = 1


class BM25Retriever:
    """Okapi BM25 (Lucene variant by default) over a list of passages, batched through bm25s."""

    name = "bm25s"

    def __init__(self, index: bm25s.BM25, passages: list[Passage], *, corpus_sha256: str = ""):
        self.index = index
        self.passages = passages
        self.corpus_sha256 = corpus_sha256

    @classmethod
    def build(
        cls,
        passages: Sequence[Passage],
        *,
        method: str = "lucene",
        k1: float = 1.5,
        b: float = 0.75,
        corpus_sha256: str = "",
    ) -> BM25Retriever:
        """Index ``passages`` in memory."""
        passages = list(passages)
        tokens = words([passage_text(p) for p in passages])
        if not any(tokens):
            raise CorpusError(
                f"none of the {len(passages)} passages has a word BM25 can index "
                "(letters or digits that are not English stopwords)"
            )
        index = bm25s.BM25(method=method, k1=k1, b=b)
        index.index(tokens, show_progress=False)
        return cls(index, passages, corpus_sha256=corpus_sha256)

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if not queries:
            return []
        k = max(1, min(int(k), len(self.passages)))
        tokens = words(queries)
        known = self.index.vocab_dict
        out: list[list[Hit]] = [[] for _ in queries]
        todo = [i for i, t in enumerate(tokens) if any(w in known for w in t)]
        if not todo:
            return out
        docs, scores = self.index.retrieve([tokens[i] for i in todo], k=k, show_progress=False)
        for row, i in enumerate(todo):
            rank = 0
            for doc, score in zip(docs[row], scores[row]):
                if score <= 0:
                    continue
                rank += 1
                out[i].append(Hit(passage=self.passages[int(doc)], score=float(score), rank=rank))
        return out

    # -- persistence ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the index atomically: a killed save leaves any previous index untouched."""
        final = Path(directory)
        with atomic_directory(final) as tmp:
            self.index.save(str(tmp), show_progress=False)
            write_passages(tmp, self.passages)
            write_manifest(
                tmp,
                {
                    "format": _FORMAT,
                    "backend": "bm25s",
                    "bm25s_version": bm25s.__version__,
                    "corpus_sha256": self.corpus_sha256,
                    "passages": len(self.passages),
                    "stopwords": STOPWORDS,
                    "method": self.index.method,
                    "k1": self.index.k1,
                    "b": self.index.b,
                },
            )
        return final

    @classmethod
    def load(cls, directory: str | Path, *, expect_sha256: str | None = None) -> BM25Retriever:
        """Open a saved index; refuse one that is missing, partial or built from another corpus."""
        d = Path(directory)
        manifest = read_manifest(d, backend="bm25s", version=_FORMAT, expect_sha256=expect_sha256)
        try:
            index = bm25s.BM25.load(str(d), show_progress=False, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise RetrievalIndexError(f"cannot load the index in {d}: {err}; rebuild it") from None
        passages = read_passages(d, manifest)
        n_docs = int(np.asarray(index.scores["num_docs"]))
        if n_docs != len(passages):
            raise RetrievalIndexError(f"index in {d} covers {n_docs} documents but lists {len(passages)} passages")
        return cls(index, passages, corpus_sha256=manifest.get("corpus_sha256", ""))

    @classmethod
    def from_corpus(
        cls, corpus: str | Path, *, index_dir: str | Path | None = None, rebuild: bool = False
    ) -> BM25Retriever:
        """Load the index of ``corpus`` from ``index_dir`` (default: the cache), building it if absent or stale."""
        digest = corpus_sha256(corpus)
        directory = Path(index_dir) if index_dir else default_index_dir(digest)
        recover_directory(directory)  # a build killed mid-swap: its previous index comes back
        if not rebuild and (directory / MANIFEST).exists():
            try:
                return cls.load(directory, expect_sha256=digest)
            except RetrievalIndexError:
                pass  # stale or damaged: rebuild below
        retriever = cls.build(load_corpus(corpus), corpus_sha256=digest)
        retriever.save(directory)
        return retriever


def default_index_dir(corpus_digest: str) -> Path:
    """Where the index of a corpus with this checksum is kept by default."""
    return default_cache_dir() / "indexes" / f"bm25s-{corpus_digest[:16]}"


__all__ = ["BM25Retriever", "default_index_dir"]
