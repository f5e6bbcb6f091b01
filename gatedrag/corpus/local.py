"""The local backend: an Infini-gram index on disk, queried in-process.

The engine is opened lazily on first use, once per process (it memory-maps the index and cannot be
pickled; a forked worker opens its own), and shared by threads (its C++ calls release the GIL).

Example::

    from gatedrag.corpus.local import LocalIndex
    stats = LocalIndex("~/.cache/gatedrag/indexes/infinigram-demo")
    stats.count("Ed Wood")                      # CorpusCount(terms=['Ed Wood'], count=..., ...)
    stats.cooccurrence(["Ed Wood", "Tim Burton"]).count
    stats.documents("Ed Wood", limit=3)         # passages that contain it: [{'id': ..., 'title': ...}]
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gatedrag.corpus.base import API_MAX_CLAUSE_FREQ, check_terms
from gatedrag.corpus.manifest import IndexManifest, read_manifest
from gatedrag.corpus.tokenizer import IndexTokenizer, load_index_tokenizer
from gatedrag.errors import CorpusBackendError, CorpusIndexError, CorpusQueryError, TokenizerMismatchError
from gatedrag.types import CorpusCount


class LocalIndex:
    """A :class:`~gatedrag.corpus.base.CorpusStats` over a local Infini-gram index.

    ``tokenizer``: the tokenizer to encode queries with (default: the one the index was built with);
    one that encodes differently from the index's is refused with :class:`TokenizerMismatchError`.
    ``window``: co-occurrence window in tokens (default: the index's median passage length, so a
    co-occurrence means "in about one passage"). ``max_clause_freq``: above this many matches a term
    is subsampled and counts become approximate.

    ``cooccurrence``: ``"document"`` (default) counts occurrences of the rarest term with every other
    term within ``window`` tokens *inside the same document*, computed exactly from the terms'
    positions; ``"cnf"`` is Infini-gram's own ``count_cnf``, as the hosted API answers. The latter
    discards matches whose range crosses a document separator, so near the edges of short passages
    a real co-occurrence can count 0, and more so as the window grows (measured: "Janet Waldo AND American" in HotpotQA's corpus is
    1 with windows of 20-50 tokens and 0 from 80 up, because the name is the passage's first words).
    """

    def __init__(
        self,
        index: str | Path,
        *,
        tokenizer: str | IndexTokenizer | None = None,
        window: int | None = None,
        max_clause_freq: int = API_MAX_CLAUSE_FREQ,
        load_to_ram: bool = False,
        cooccurrence: Literal["document", "cnf"] = "document",
    ):
        self.directory, self.manifest = read_manifest(index)
        self.index = Path(index)
        if window is not None and window < 1:
            raise CorpusQueryError(f"window must be at least 1 token, got {window}")
        if max_clause_freq < 1:
            raise CorpusQueryError(f"max_clause_freq must be positive, got {max_clause_freq}")
        spec = tokenizer if tokenizer is not None else self.manifest.tokenizer.name
        self.tokenizer = load_index_tokenizer(spec) if isinstance(spec, str | Path) else spec
        check_tokenizer(self.tokenizer, self.manifest, self.directory)
        self.window = window or max(1, self.manifest.doc_tokens_p50)
        self.max_clause_freq = max_clause_freq
        self.load_to_ram = load_to_ram
        if cooccurrence not in ("document", "cnf"):
            raise CorpusQueryError(f"cooccurrence must be document or cnf, got {cooccurrence!r}")
        self.cooccurrence_mode = cooccurrence
        self._width = {"u8": 1, "u16": 2, "u32": 4}[self.manifest.token_dtype]
        self._bounds: dict[int, np.ndarray] = {}
        self._tables: dict[int, tuple[np.ndarray, int]] = {}
        self.name = f"local:{self.directory.parent if self.directory.name.startswith('v-') else self.directory}"
        self._engine: Any = None
        self._pid = -1
        self._lock = threading.Lock()

    # -- engine -----------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        """The ``InfiniGramEngine`` of this process (opened on first use)."""
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    self._engine = self._open()
                    self._pid = os.getpid()
        return self._engine

    def _open(self) -> Any:
        try:
            from infini_gram.engine import InfiniGramEngine
        except ImportError:
            raise CorpusBackendError(
                "the local corpus index needs the infini-gram package: pip install 'gatedrag[corpus]'"
            ) from None
        m = self.manifest
        try:
            return InfiniGramEngine(
                index_dir=str(self.directory),
                eos_token_id=m.tokenizer.eos_token_id,
                vocab_size=max(m.tokenizer.vocab_size, m.tokenizer.eos_token_id + 1),
                token_dtype=m.token_dtype,
                load_to_ram=self.load_to_ram,
                max_clause_freq=self.max_clause_freq,
                max_diff_tokens=self.window,
            )
        except Exception as err:
            raise CorpusBackendError(f"cannot open the corpus index {self.directory}: {err}") from None

    @staticmethod
    def _checked(result: dict[str, Any]) -> dict[str, Any]:
        if "error" in result:
            raise CorpusBackendError(f"infini-gram engine: {result['error']}")
        return result

    # -- token-id level (what the HTTP server calls) --------------------------------------------------
    def encode(self, term: str) -> list[int]:
        ids = self.tokenizer.encode(term)
        if not ids:
            raise CorpusQueryError(f"corpus query term {term!r} tokenises to nothing")
        return ids

    def count_ids(self, ids: list[int]) -> dict[str, Any]:
        return self._checked(self.engine.count(input_ids=ids))

    def count_cnf_ids(
        self, cnf: list[list[list[int]]], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> dict[str, Any]:
        return self._checked(
            self.engine.count_cnf(
                cnf=cnf,
                max_clause_freq=max_clause_freq or self.max_clause_freq,
                max_diff_tokens=window or self.window,
            )
        )

    # -- exact same-document co-occurrence ---------------------------------------------------------
    def _doc_bounds(self, shard: int) -> np.ndarray:
        """Token index of each document's separator in ``shard``, plus the shard's end."""
        if shard not in self._bounds:
            starts = np.fromfile(self.directory / f"offset.{shard}", dtype=np.uint64).astype(np.int64) // self._width
            end = (self.directory / f"tokenized.{shard}").stat().st_size // self._width
            self._bounds[shard] = np.append(starts, end)
        return self._bounds[shard]

    def _table(self, shard: int) -> tuple[np.ndarray, int]:
        """The suffix array of ``shard`` as raw bytes (memory-mapped) and its pointer width."""
        if shard not in self._tables:
            size = (self.directory / f"tokenized.{shard}").stat().st_size
            ratio = max(1, int(np.ceil(np.log2(max(size, 2)) / 8)))
            table = np.memmap(self.directory / f"table.{shard}", dtype=np.uint8, mode="r")
            self._tables[shard] = (table, ratio)
        return self._tables[shard]

    def _positions(self, ids: list[int]) -> tuple[list[np.ndarray], int, bool]:
        """Sorted token positions of ``ids`` per shard, read from the suffix arrays (evenly subsampled
        above ``max_clause_freq`` matches)."""
        found = self._checked(self.engine.find(input_ids=ids))
        total, approx, shards = int(found["cnt"]), False, []
        for shard, (lo, hi) in enumerate(found["segment_by_shard"]):
            table, ratio = self._table(shard)
            ranks = np.arange(lo, hi, dtype=np.int64)
            if total > self.max_clause_freq:
                approx = True
                ranks = ranks[:: int(np.ceil(total / self.max_clause_freq))]
            raw = table[(ranks[:, None] * ratio + np.arange(ratio)).ravel()].reshape(-1, ratio).astype(np.int64)
            ptrs = (raw << (8 * np.arange(ratio, dtype=np.int64))).sum(axis=1)
            shards.append(np.sort(ptrs // self._width))
        return shards, total, approx

    def count_in_documents(self, id_lists: list[list[int]], window: int) -> dict[str, Any]:
        """``{"count", "approx"}``: occurrences of the rarest n-gram with every other within
        ``window`` tokens, inside one document (see the class doc)."""
        found = [self._positions(ids) for ids in id_lists]
        rare = min(range(len(found)), key=lambda i: found[i][1])
        total = 0
        for shard, anchors in enumerate(found[rare][0]):
            if not len(anchors):
                continue
            bounds = self._doc_bounds(shard)
            doc = np.searchsorted(bounds, anchors, side="right") - 1
            start, end = bounds[doc] + 1, bounds[doc + 1]
            ok = np.ones(len(anchors), dtype=bool)
            for j, (positions, _, _) in enumerate(found):
                if j == rare:
                    continue
                other = positions[shard]
                if not len(other):
                    ok[:] = False
                    break
                lo = np.maximum(anchors - window, start)
                hi = np.minimum(anchors + window, end - len(id_lists[j]))
                idx = np.searchsorted(other, lo, side="left")
                nearest = other[np.minimum(idx, len(other) - 1)]
                ok &= (idx < len(other)) & (nearest <= hi)
            total += int(ok.sum())
        sampled = sum(len(p) for p in found[rare][0])
        approx = any(a for _, _, a in found)
        if found[rare][2] and sampled:
            total = round(total * found[rare][1] / sampled)
        return {"count": total, "approx": approx}

    # -- CorpusStats ----------------------------------------------------------------------------------
    def total_tokens(self) -> int:
        return self.manifest.tokens

    def count(self, phrase: str) -> CorpusCount:
        (term,) = check_terms([phrase], max_terms=1)
        t0 = time.perf_counter()
        result = self.count_ids(self.encode(term))
        return CorpusCount(
            terms=[term],
            count=int(result["count"]),
            approx=bool(result.get("approx", False)),
            total_tokens=self.manifest.tokens,
            backend=self.name,
            latency_ms=round((time.perf_counter() - t0) * 1e3, 3),
        )

    def cooccurrence(
        self, terms: Sequence[str], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> CorpusCount:
        cleaned = check_terms(terms)
        if window is not None and window < 1:
            raise CorpusQueryError(f"window must be at least 1 token, got {window}")
        t0 = time.perf_counter()
        if self.cooccurrence_mode == "document":
            if max_clause_freq is not None and max_clause_freq != self.max_clause_freq:
                raise CorpusQueryError("document co-occurrence uses the index's max_clause_freq; set it on LocalIndex")
            result = self.count_in_documents([self.encode(t) for t in cleaned], window or self.window)
        else:
            cnf = [[self.encode(t)] for t in cleaned]
            result = self.count_cnf_ids(cnf, window=window, max_clause_freq=max_clause_freq)
        return CorpusCount(
            terms=cleaned,
            count=int(result["count"]),
            approx=bool(result.get("approx", False)),
            window=window or self.window,
            total_tokens=self.manifest.tokens,
            backend=self.name,
            latency_ms=round((time.perf_counter() - t0) * 1e3, 3),
        )

    def documents(self, phrase: str, *, limit: int = 5, scan: int = 1000) -> list[dict[str, Any]]:
        """Passages (``{"id", "title"}``, deduplicated, in suffix-array order) holding ``phrase``: how a
        count is traced back to the corpus. Looks at most at ``scan`` occurrences."""
        (term,) = check_terms([phrase], max_terms=1)
        found = self._checked(self.engine.find(input_ids=self.encode(term)))
        seen: set[tuple[int, int]] = set()
        out: list[dict[str, Any]] = []
        for shard, (lo, hi) in enumerate(found["segment_by_shard"]):
            for rank in range(lo, min(hi, lo + scan)):
                doc = self._checked(self.engine.get_doc_by_rank(s=shard, rank=rank, max_disp_len=1))
                if (shard, doc["doc_ix"]) in seen:
                    continue
                seen.add((shard, doc["doc_ix"]))
                try:
                    out.append(json.loads(doc.get("metadata") or "{}"))
                except json.JSONDecodeError:
                    continue
                if len(out) >= limit:
                    return out
        return out

    def __repr__(self) -> str:
        m = self.manifest
        return f"LocalIndex({str(self.index)!r}, documents={m.documents}, tokens={m.tokens}, window={self.window})"


def check_tokenizer(tokenizer: IndexTokenizer, manifest: IndexManifest, directory: Path) -> None:
    """Refuse a tokenizer that encodes differently from the one the index was built with."""
    if tokenizer.fingerprint != manifest.tokenizer.fingerprint:
        raise TokenizerMismatchError(
            f"index {directory} was built with tokenizer {manifest.tokenizer.name} "
            f"(fingerprint {manifest.tokenizer.fingerprint}) but queries would be encoded with {tokenizer.name} "
            f"(fingerprint {tokenizer.fingerprint}): use the index's tokenizer or rebuild the index"
        )
    if tokenizer.token_dtype != manifest.token_dtype:
        raise CorpusIndexError(
            f"index {directory} stores {manifest.token_dtype} ids; {tokenizer.name} needs {tokenizer.token_dtype}"
        )


__all__ = ["LocalIndex", "check_tokenizer"]
