"""Answer selection: the candidate answers an answer's rungs produced, their features, their scores.

Every proposed sentence that states the final answer ("So the answer is X.") is a candidate,
whether it was kept or discarded for a retrieval: the closed-book version, the version written
with the first passages, the version after a deep search. Their features are the sentence's signal
values (``signal:<name>``, each in its own units), the model's P(True) given the passages it was
written with, the agreement with the other candidates (exact and token-F1), the rung (one-hot) and
the retrievals spent before it. The policy returns the candidate with the highest score: the
:class:`~gatedrag.gate.combiner.Combiner`'s calibrated probability, or P(True) without one.

Example:
    >>> from gatedrag.gate.select import Candidate, candidate_features, choose
    >>> a = Candidate(sentence=0, answer="Spielberg", rung="closed_book")
    >>> b = Candidate(sentence=2, answer="Tim Burton", rung="retrieved", retrievals=1)
    >>> f = candidate_features(b, p_true=0.8, agreement=0.0, agreement_soft=0.0)
    >>> f["rung:retrieved"], f["p_true"]
    (1.0, 0.8)
    >>> choose([0.3, 0.8])
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.config import PipelineConfig
from gatedrag.types import SignalValue

CandidateRung = Literal["closed_book", "given", "retrieved", "deep_search"]
"""What the candidate was written with: no passages, passages given with the question, retrieved
passages, passages a deep search accumulated."""
RUNGS: tuple[CandidateRung, ...] = ("closed_book", "given", "retrieved", "deep_search")


class Candidate(BaseModel):
    """A candidate answer: the proposed sentence it comes from (its number in the trace), the short
    answer, the rung, the retrievals spent before it, the sentence's signals, the passages it was
    written with (ids)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sentence: int = Field(ge=0)
    answer: str
    rung: CandidateRung
    retrievals: int = Field(default=0, ge=0)
    signals: list[SignalValue] = Field(default_factory=list)
    passages: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    """Geometric-mean probability of the answer's tokens."""


class ScoredCandidate(Candidate):
    """A candidate with its features' answer-level values and its score (0 to 1, higher = better)."""

    p_true: float | None = Field(default=None, ge=0.0, le=1.0)
    agreement: float = Field(default=1.0, ge=0.0, le=1.0)
    agreement_soft: float = Field(default=1.0, ge=0.0, le=1.0)
    sample_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    """Fraction of the sampled final answers equal to this one (normalised), if samples were drawn."""
    sample_agreement_soft: float | None = Field(default=None, ge=0.0, le=1.0)
    """Mean token F1 of this answer with the sampled ones."""
    score: float = Field(ge=0.0, le=1.0)


def candidate_features(
    candidate: Candidate,
    *,
    p_true: float | None,
    agreement: float,
    agreement_soft: float,
    sample_agreement: float | None = None,
    sample_agreement_soft: float | None = None,
) -> dict[str, float]:
    """The combiner's inputs for one candidate (a missing value is left out)."""
    features: dict[str, float] = {
        "agreement": agreement,
        "agreement_soft": agreement_soft,
        "retrievals": float(candidate.retrievals),
        "confidence": candidate.confidence,
    }
    if p_true is not None:
        features["p_true"] = p_true
    if sample_agreement is not None:
        features["sample_agreement"] = sample_agreement
    if sample_agreement_soft is not None:
        features["sample_agreement_soft"] = sample_agreement_soft
    for rung in RUNGS:
        features[f"rung:{rung}"] = float(candidate.rung == rung)
    for v in candidate.signals:
        features[f"signal:{v.name}"] = v.value
    return features


def expected_features(config: PipelineConfig) -> list[str]:
    """Every feature a pipeline with ``config`` can give its candidates."""
    names = [r.signal for r in config.gate.rules]
    if config.draft is not None:
        names += [r.signal for r in config.draft.rules]
    select = config.policy.select
    base = ["agreement", "agreement_soft", "retrievals", "confidence"]
    if select is None or select.verify:
        base.append("p_true")
    if select is not None and select.samples:
        base += ["sample_agreement", "sample_agreement_soft"]
    return base + [f"rung:{r}" for r in RUNGS] + [f"signal:{n}" for n in dict.fromkeys(names)]


def choose(scores: Sequence[float]) -> int:
    """The index of the best score; a tie goes to the later candidate (written with more evidence)."""
    best = 0
    for i, s in enumerate(scores):
        if s >= scores[best]:
            best = i
    return best


__all__ = [
    "RUNGS",
    "Candidate",
    "CandidateRung",
    "ScoredCandidate",
    "candidate_features",
    "choose",
    "expected_features",
]
