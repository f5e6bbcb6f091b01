"""Token-probability and token-entropy signals, each named after the rule it reproduces.

* :class:`FlareSignal`: original FLARE (Jiang et al. 2023, anchors §4.1–4.2): retrieve if **any**
  token has probability ``p < theta`` (0.8); the query masks tokens with ``p <= beta`` (0.4).
  Value = ``1 - min_t p_t`` (unitless, in [0, 1]); threshold shown = ``1 - theta``.
* :class:`TokenRAGSignal`: TokenRAG, the "FLARE" baseline of the DRAGIN and QuCo-RAG code
  (anchors §4.3): value = ``mean_t (1 - p_t)`` (unitless, in [0, 1]); retrieve if it is ``> threshold``
  (their ``theta``); the query drops tokens with ``1 - p > threshold``.
* :class:`EntropySignal`: entropy (nats) of the full next-token distribution, ``max`` or ``mean``
  over the sentence's tokens.

Example:
    >>> from gatedrag.signals.token import FlareSignal
    >>> from gatedrag.types import TokenStep
    >>> import math
    >>> toks = [TokenStep(token_id=1, text="Paris", logprob=math.log(0.95), entropy=0.2),
    ...         TokenStep(token_id=2, text=" 1789", logprob=math.log(0.3), entropy=2.1)]
    >>> v = FlareSignal().evaluate(toks)
    >>> round(v.value, 2), v.fired, v.token_indices
    (0.7, True, [1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from gatedrag.signals.base import SentenceContext, SignalBase, span_of
from gatedrag.types import SignalValue, TokenStep


def _probs(tokens: Sequence[TokenStep]) -> list[float]:
    return [math.exp(t.logprob) for t in tokens]


class FlareSignal(SignalBase):
    """Original FLARE: fires when any token's probability is below ``theta``."""

    name: ClassVar[str] = "flare"
    unit: ClassVar[str] = "1 - probability"
    threshold_param: ClassVar[str] = "theta"

    def __init__(self, theta: float = 0.8, beta: float = 0.4, act: bool = True):
        if not 0.0 < theta <= 1.0:
            raise ValueError(f"FLARE theta must be in (0, 1], got {theta}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"FLARE beta must be in [0, 1], got {beta}")
        self.theta, self.beta, self.act = theta, beta, act

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        probs = _probs(tokens)
        flagged = [i for i, p in enumerate(probs) if p < self.theta]
        p_min = min(probs, default=1.0)
        return SignalValue(
            name=self.name,
            value=1.0 - p_min,
            threshold=1.0 - self.theta,
            fired=bool(flagged),
            span=span_of(tokens, flagged),
            token_indices=flagged,
            details={"min_prob": p_min, "theta": self.theta, "tokens_below_theta": float(len(flagged))},
        )

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]:
        return {i for i, p in enumerate(_probs(tokens)) if p <= self.beta}


class TokenRAGSignal(SignalBase):
    """TokenRAG: fires when the sentence's mean ``1 - p`` exceeds ``threshold``."""

    name: ClassVar[str] = "token_rag"
    unit: ClassVar[str] = "mean 1 - probability"

    def __init__(self, threshold: float = 0.1, act: bool = True):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"TokenRAG threshold must be in [0, 1], got {threshold}")
        self.threshold, self.act = threshold, act

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        probs = _probs(tokens)
        value = sum(1.0 - p for p in probs) / len(probs) if probs else 0.0
        flagged = [i for i, p in enumerate(probs) if 1.0 - p > self.threshold]
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=value > self.threshold,
            span=span_of(tokens, flagged),
            token_indices=flagged,
            details={"mean_one_minus_p": value, "tokens": float(len(probs))},
        )

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]:
        return {i for i, p in enumerate(_probs(tokens)) if 1.0 - p > self.threshold}


class EntropySignal(SignalBase):
    """Token entropy (nats) aggregated over the sentence; fires above ``threshold`` if one is set."""

    name: ClassVar[str] = "entropy"
    unit: ClassVar[str] = "nats"

    def __init__(self, threshold: float | None = None, aggregate: Literal["max", "mean"] = "max", act: bool = True):
        if threshold is not None and threshold < 0:
            raise ValueError(f"entropy threshold must be >= 0 nats, got {threshold}")
        self.threshold, self.aggregate, self.act = threshold, aggregate, act

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        ent = [t.entropy for t in tokens]
        if not ent:
            value = 0.0
        else:
            value = max(ent) if self.aggregate == "max" else sum(ent) / len(ent)
        if self.threshold is not None:
            flagged = [i for i, h in enumerate(ent) if h > self.threshold]
        else:
            flagged = [max(range(len(ent)), key=ent.__getitem__)] if ent else []
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=self.threshold is not None and value > self.threshold,
            span=span_of(tokens, flagged),
            token_indices=flagged,
            details={f"{self.aggregate}_entropy_nats": value},
        )

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]:
        if self.threshold is None:
            return set()
        return {i for i, t in enumerate(tokens) if t.entropy > self.threshold}


__all__ = ["EntropySignal", "FlareSignal", "TokenRAGSignal"]
