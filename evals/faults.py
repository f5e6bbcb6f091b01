"""Fault injection: wrappers that make a retriever, corpus-statistics backend, re-ranker or
language model fail on purpose, counting every fault they inject.

What the reliability benchmark (``benchmarks/bench_reliability.py faults``) and the fault tests
wrap around real backends. A :class:`Faults` plan says which calls fail (every ``every``-th, from
the ``first``-th on) and how:

- ``raise``: the call raises :class:`InjectedFault` (a ``RuntimeError``, as a broken store would);
- ``hang``: the call blocks until :meth:`Faults.release` (a dead server without a timeout);
- ``slow``: the call answers after ``slow_s`` seconds (within a time limit it must succeed);
- ``malformed``: the call returns something of the wrong type;
- ``partial``: the call returns fewer results than asked for.

Example:
    >>> from gatedrag.retrieval.bm25 import BM25Retriever
    >>> from gatedrag.types import Passage
    >>> inner = BM25Retriever.build([Passage(id="1", text="Paris is in France.")])
    >>> plan = Faults(kind="partial")
    >>> found = FaultyRetriever(inner, plan).retrieve(["Paris", "France"], k=1)
    >>> [[h.passage.id for h in hits] for hits in found], plan.injected   # the second query's hits are missing
    ([['1']], 1)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from gatedrag.lm.base import DecodeSession, LanguageModel, NextToken
from gatedrag.retrieval.base import Retriever
from gatedrag.retrieval.rerank import Reranker
from gatedrag.types import CorpusCount, DecodeOutcome, Hit, TokenStep

T = TypeVar("T")

FaultKind = Literal["raise", "hang", "slow", "malformed", "partial"]
FAULT_KINDS: tuple[FaultKind, ...] = ("raise", "hang", "slow", "malformed", "partial")


class InjectedFault(RuntimeError):
    """The error a ``raise`` fault raises."""


class Faults(BaseModel):
    """Which calls of a wrapped backend fail, and how; counts calls and faults (thread-safe)."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    every: int = Field(default=1, ge=1)
    """Every ``every``-th call (counted from ``first``) fails; 1: all of them."""
    first: int = Field(default=1, ge=1)
    """The first call that may fail (1: the first call)."""
    slow_s: float = Field(default=0.2, ge=0.0)

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _released: threading.Event = PrivateAttr(default_factory=threading.Event)
    _calls: int = PrivateAttr(default=0)
    _injected: int = PrivateAttr(default=0)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def injected(self) -> int:
        return self._injected

    def release(self) -> None:
        """Let every hung call return (with a ``raise`` fault), and every later one at once."""
        self._released.set()

    def due(self) -> bool:
        """Count a call; whether it is one that fails."""
        with self._lock:
            self._calls += 1
            n = self._calls - self.first
            fail = n >= 0 and n % self.every == 0
            self._injected += fail
            return fail

    def apply(self, fn: Callable[[], T], *, malformed: Callable[[], Any], partial: Callable[[T], Any]) -> Any:
        """``fn()``, or this plan's fault instead of it when the call is due."""
        if not self.due():
            return fn()
        if self.kind == "raise":
            raise InjectedFault("injected fault: the backend raised")
        if self.kind == "hang":
            self._released.wait()
            raise InjectedFault("injected fault: a hung call was released")
        if self.kind == "slow":
            time.sleep(self.slow_s)
            return fn()
        if self.kind == "malformed":
            return malformed()
        return partial(fn())


class FaultyRetriever:
    """``inner`` with ``faults`` injected into its ``retrieve`` calls (partial: the last query's
    hits are missing)."""

    def __init__(self, inner: Retriever, faults: Faults):
        self.inner, self.faults = inner, faults
        self.name = f"faulty({inner.name})"

    def retrieve(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return self.faults.apply(
            lambda: self.inner.retrieve(queries, k),
            malformed=lambda: [["not a hit"] for _ in queries],
            partial=lambda hits: hits[:-1],
        )


class FaultyCorpusStats:
    """``inner`` corpus statistics with ``faults`` injected into every query (malformed: a dict
    instead of a count; partial: the count without its terms)."""

    def __init__(self, inner: Any, faults: Faults):
        self.inner, self.faults = inner, faults
        self.name = f"faulty({inner.name})"

    def total_tokens(self) -> int:
        return self.faults.apply(self.inner.total_tokens, malformed=lambda: "many", partial=lambda n: -1)

    def count(self, phrase: str) -> CorpusCount:
        return self.faults.apply(
            lambda: self.inner.count(phrase), malformed=lambda: {"count": 1}, partial=lambda c: {"count": c.count}
        )

    def cooccurrence(
        self, terms: Sequence[str], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> CorpusCount:
        return self.faults.apply(
            lambda: self.inner.cooccurrence(terms, window=window, max_clause_freq=max_clause_freq),
            malformed=lambda: None,
            partial=lambda c: {"count": c.count},
        )


class FaultyReranker:
    """``inner`` re-ranker with ``faults`` injected (malformed: strings; partial: the last hit dropped)."""

    def __init__(self, inner: Reranker, faults: Faults):
        self.inner, self.faults = inner, faults
        self.name = f"faulty({inner.name})"

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        return self.faults.apply(
            lambda: self.inner.rerank(query, hits),
            malformed=lambda: [h.passage.text for h in hits],
            partial=lambda ranked: ranked[:-1],
        )


ModelCall = Literal["decode", "score", "next_token"]


class _FaultySession:
    def __init__(self, inner: DecodeSession, faults: Faults | None):
        self.inner, self.faults = inner, faults

    def start(self, key: Hashable, prompt: str, **kwargs: Any) -> int:
        return self.inner.start(key, prompt, **kwargs)

    def decode(self, keys: Sequence[Hashable], **kwargs: Any) -> dict[Hashable, DecodeOutcome]:
        if self.faults is None:
            return self.inner.decode(keys, **kwargs)
        return self.faults.apply(
            lambda: self.inner.decode(keys, **kwargs),
            malformed=lambda: dict.fromkeys(keys, "text"),
            partial=lambda outcomes: dict(list(outcomes.items())[:-1]),
        )

    def close(self, key: Hashable) -> None:
        self.inner.close(key)


class FaultyLM:
    """``inner`` language model with ``faults`` injected into the ``calls`` named (decoding rounds,
    scoring, next-token distributions). An in-process model cannot be interrupted: its ``hang`` is
    released by :meth:`Faults.release`; the time limits apply to the other backends and to servers."""

    def __init__(
        self, inner: LanguageModel, faults: Faults, *, calls: Sequence[ModelCall] = ("decode", "score", "next_token")
    ):
        self.inner, self.faults, self.calls = inner, faults, frozenset(calls)
        self.name = inner.name
        self.context_length = inner.context_length
        self.capabilities = inner.capabilities

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def open_session(self) -> DecodeSession:
        return _FaultySession(self.inner.open_session(), self.faults if "decode" in self.calls else None)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        if "score" not in self.calls:
            return self.inner.score(prompts, continuations)
        return self.faults.apply(
            lambda: self.inner.score(prompts, continuations),
            malformed=lambda: [None for _ in prompts],
            partial=lambda steps: steps[:-1],
        )

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        if "next_token" not in self.calls:
            return self.inner.next_token(prompts)
        return self.faults.apply(
            lambda: self.inner.next_token(prompts),
            malformed=lambda: ["?" for _ in prompts],
            partial=lambda dists: dists[:-1],
        )


__all__ = [
    "FAULT_KINDS",
    "FaultKind",
    "Faults",
    "FaultyCorpusStats",
    "FaultyLM",
    "FaultyReranker",
    "FaultyRetriever",
    "InjectedFault",
    "ModelCall",
]
