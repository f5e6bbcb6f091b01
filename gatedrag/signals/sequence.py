"""Sequence-level likelihood signals.

:class:`GNLLSignal` is G-NLL (Aichberger et al. 2024, anchors §7): the negative log-likelihood of
the greedy output, ``-sum_t log p(y_t | x, y_<t)`` in nats over the sentence's tokens (or the
per-token mean with ``normalize=True``). Higher = more uncertain. It points at the token that
contributes most.

Example:
    >>> from gatedrag.signals.sequence import GNLLSignal
    >>> from gatedrag.types import TokenStep
    >>> toks = [TokenStep(token_id=1, text="a", logprob=-0.5, entropy=1.0),
    ...         TokenStep(token_id=2, text="b", logprob=-1.5, entropy=1.0)]
    >>> GNLLSignal().evaluate(toks).value
    2.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gatedrag.signals.base import Family, SentenceContext, SignalBase, span_of
from gatedrag.types import SignalValue, TokenStep


class GNLLSignal(SignalBase):
    """G-NLL of the sentence; fires above ``threshold`` (nats) if one is set."""

    name: ClassVar[str] = "gnll"
    family: ClassVar[Family] = "sequence"
    unit: ClassVar[str] = "nats"

    def __init__(self, threshold: float | None = None, normalize: bool = False, act: bool = True):
        if threshold is not None and threshold < 0:
            raise ValueError(f"G-NLL threshold must be >= 0 nats, got {threshold}")
        self.threshold, self.normalize, self.act = threshold, normalize, act

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        nll = [-t.logprob for t in tokens]
        total = sum(nll)
        value = total / len(nll) if self.normalize and nll else total
        worst = [max(range(len(nll)), key=nll.__getitem__)] if nll else []
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=self.threshold is not None and value > self.threshold,
            span=span_of(tokens, worst),
            token_indices=worst,
            details={"nll_nats": total, "tokens": float(len(nll))},
        )


__all__ = ["GNLLSignal"]
