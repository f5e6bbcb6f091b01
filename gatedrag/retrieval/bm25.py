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

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from gatedrag.errors import RetrievalIndexError
from gatedrag.lm.packaged import default_cache_dir
from gatedrag.retrieval.corpus import corpus_sha256, load_corpus
from gatedrag.retrieval.tokenize import STOPWORDS, passage_text, words
from gatedrag.types import Hit, Passage

MANIFEST = "gatedrag-index.json"
PASSAGES = "passages.jsonl"
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
        index = bm25s.BM25(method=method, k1=k1, b=b)
        index.index(words([passage_text(p) for p in passages]), show_progress=False)
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
        tmp = final.with_name(final.name + f".building-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self.index.save(str(tmp), show_progress=False)
            with open(tmp / PASSAGES, "w", encoding="utf-8") as fh:
                for p in self.passages:
                    fh.write(p.model_dump_json() + "\n")
            manifest = {
                "format": _FORMAT,
                "backend": "bm25s",
                "bm25s_version": bm25s.__version__,
                "corpus_sha256": self.corpus_sha256,
                "passages": len(self.passages),
                "stopwords": STOPWORDS,
                "method": self.index.method,
                "k1": self.index.k1,
                "b": self.index.b,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            old = final.with_name(final.name + f".old-{os.getpid()}")
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    @classmethod
    def load(cls, directory: str | Path, *, expect_sha256: str | None = None) -> BM25Retriever:
        """Open a saved index; refuse one that is missing, partial or built from another corpus."""
        d = Path(directory)
        try:
            manifest = json.loads((d / MANIFEST).read_text())
        except FileNotFoundError:
            raise RetrievalIndexError(
                f"no gatedrag index in {d}: build one with `gatedrag index build CORPUS`"
            ) from None
        except (OSError, ValueError) as err:
            raise RetrievalIndexError(f"unreadable index manifest in {d}: {err}") from None
        if manifest.get("format") != _FORMAT or manifest.get("backend") != "bm25s":
            raise RetrievalIndexError(f"index in {d} has an unsupported format; rebuild it")
        if expect_sha256 and manifest.get("corpus_sha256") != expect_sha256:
            raise RetrievalIndexError(f"index in {d} was built from another version of the corpus; rebuild it")
        try:
            index = bm25s.BM25.load(str(d), show_progress=False, allow_pickle=False)
            with open(d / PASSAGES, encoding="utf-8") as fh:
                passages = [Passage.model_validate_json(line) for line in fh if line.strip()]
        except (OSError, ValueError) as err:
            raise RetrievalIndexError(f"cannot load the index in {d}: {err}; rebuild it") from None
        if len(passages) != manifest.get("passages"):
            raise RetrievalIndexError(
                f"index in {d} is partial ({len(passages)} passages of {manifest.get('passages')})"
            )
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
