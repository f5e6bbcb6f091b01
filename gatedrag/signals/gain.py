"""Confidence gain (CK-PLUG, anchors §2): how much the retrieved context changed the model's
certainty, aggregated over a sentence.

Reads the per-token ``confidence_gain`` (CG = H_p - H_c, nats) and ``conflict`` flags that a
two-branch decoder (:mod:`gatedrag.control`) writes on each :class:`~gatedrag.types.TokenStep`.
Value = the fraction of the sentence's tokens in conflict (unitless, in [0, 1]; higher = the
passages and the model's memory disagree more); fires above ``threshold``. ``details`` has the mean
and minimum CG. A sentence decoded without the no-context branch has no value (``note``) and never
fires.

Example:
    >>> from gatedrag.signals.gain import ConfidenceGainSignal
    >>> from gatedrag.types import TokenStep
    >>> toks = [TokenStep(token_id=1, text=" Paris", logprob=-0.1, entropy=0.3, confidence_gain=0.8, conflict=False),
    ...         TokenStep(token_id=2, text=" 1889", logprob=-1.0, entropy=1.5, confidence_gain=-0.6, conflict=True)]
    >>> v = ConfidenceGainSignal(threshold=0.25).evaluate(toks)
    >>> v.value, v.fired, v.details["mean_confidence_gain"]
    (0.5, True, 0.1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gatedrag.signals.base import Family, Need, Rung, SentenceContext, SignalBase, span_of
from gatedrag.types import SignalValue, TokenStep


class ConfidenceGainSignal(SignalBase):
    """Fraction of a sentence's tokens where context and memory conflict (see the module doc)."""

    name: ClassVar[str] = "confidence_gain"
    family: ClassVar[Family] = "context"
    unit: ClassVar[str] = "fraction of tokens in conflict"
    rung: ClassVar[Rung] = "adjust"  # answered with logit control, not retrieval
    needs: ClassVar[frozenset[Need]] = frozenset({"twin"})

    def __init__(self, threshold: float | None = 0.25, act: bool = True):
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"confidence_gain threshold is a fraction of tokens in [0, 1], got {threshold}")
        self.threshold, self.act = threshold, act

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        measured = [(i, t) for i, t in enumerate(tokens) if t.confidence_gain is not None]
        if not measured:
            return SignalValue(
                name=self.name, value=0.0, threshold=self.threshold, note="decoded without a no-context branch"
            )
        gains = [float(t.confidence_gain) for _, t in measured]  # type: ignore[arg-type]
        flagged = [i for i, t in measured if t.conflict]
        value = len(flagged) / len(measured)
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=self.threshold is not None and value > self.threshold,
            span=span_of(tokens, flagged),
            token_indices=flagged,
            details={
                "mean_confidence_gain": round(sum(gains) / len(gains), 6),
                "min_confidence_gain": min(gains),
                "conflict_tokens": float(len(flagged)),
            },
        )


__all__ = ["ConfidenceGainSignal"]
