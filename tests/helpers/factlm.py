"""A scripted model for fact-check tests: per claim, its closed-book and with-evidence verdict
distributions and how contradictory its rationales are; it writes "For <claim>" / "Against
<claim>" rationales and "look up <claim>" queries."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

from gatedrag.lm.base import ModelCapabilities, NextToken
from gatedrag.types import DecodeOutcome, Hit, Passage, TokenAlternative, TokenStep
from helpers.scripted import sentence

Dist = Sequence[tuple[str, float]]


def _top(dist: Dist) -> list[TokenAlternative]:
    return [TokenAlternative(token_id=i, text=t, logprob=math.log(p)) for i, (t, p) in enumerate(dist)]


class _Session:
    def __init__(self, lm: FactLM):
        self.lm = lm
        self.rows: dict[Hashable, str] = {}

    def start(self, key, prompt, *, cached_prefix="", continuation=(), twin=None) -> int:
        self.rows[key] = prompt
        return len(prompt.split())

    def decode(self, keys, *, on_sentence, budgets, sampling=None, **_) -> dict[Hashable, DecodeOutcome]:
        out = {}
        for key in keys:
            prompt = self.rows[key]
            claim = self.lm.claim_in(prompt)
            if "strongly supports" in prompt:
                text = f"For {claim}"
            elif "strongly refutes" in prompt:
                text = f"Against {claim}"
            else:
                self.lm.reflected.append(prompt)
                text = f"look up {claim}"
            s = sentence(text, 0.9)
            on_sentence(key, s)
            out[key] = DecodeOutcome(sentences=[s], finish="stop", new_tokens=len(s.tokens))
        return out

    def close(self, key) -> None:
        self.rows.pop(key, None)


class FactLM:
    name = "factlm"
    context_length = 100_000
    capabilities = ModelCapabilities()

    def __init__(
        self,
        closed: Mapping[str, Dist],
        evidence: Mapping[str, Dist] | None = None,
        phi: Mapping[str, float] | None = None,
        by_text: Mapping[str, Dist] | None = None,
    ):
        """``by_text``: the verdict with exactly this text as the (only) evidence passage's text."""
        self.by_text = dict(by_text or {})
        self.closed = dict(closed)
        self.evidence = dict(evidence or {})
        self.phi = dict(phi or {})
        self.verdict_prompts: list[str] = []
        self.closed_batches: list[int] = []
        """The size of every batch of closed-book verdict prompts."""
        self.reflected: list[str] = []

    def claim_in(self, prompt: str) -> str:
        return next(c for c in sorted(self.closed, key=len, reverse=True) if c in prompt)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def open_session(self) -> _Session:
        return _Session(self)

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        if not any("Evidence:" in p for p in prompts):
            self.closed_batches.append(len(prompts))
        out = []
        for p in prompts:
            self.verdict_prompts.append(p)
            claim = self.claim_in(p)
            dist = self.evidence.get(claim, [(" Unknown", 0.9)]) if "Evidence:" in p else self.closed[claim]
            if "Evidence:\n[1] " in p and "\n[2] " not in p:
                text = p.split("Evidence:\n[1] ", 1)[1].split("\n", 1)[0].split(": ", 1)[-1]
                dist = self.by_text.get(text, dist)
            out.append(NextToken(entropy=1.0, top=_top(dist)))
        return out

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        out = []
        for p in prompts:
            phi = self.phi.get(self.claim_in(p), 0.1)
            no = TokenAlternative(token_id=2, text=" No", logprob=math.log(1 - phi))
            out.append([TokenStep(token_id=1, text=" Yes", logprob=math.log(phi), entropy=0.7, top=[no])])
        return out


class OnePassage:
    """A retriever that finds the same one passage for every query."""

    name = "one-passage"

    def __init__(self, title: str, text: str):
        self.passage = Passage(id="p1", title=title, text=text)

    def retrieve(self, queries, k):
        return [[Hit(passage=self.passage, score=1.0, rank=1)] for _ in queries]
