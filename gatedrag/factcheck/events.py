"""The immutable events of a fact check, and the verdict they add up to (the same rules as the
answer's trace, :mod:`gatedrag.events`: an emitted event never changes; later facts are new events).

Example:
    >>> from gatedrag.factcheck.events import Verdict, VerdictGiven
    >>> v = Verdict.from_events("Water boils at 90 C.", [VerdictGiven(seq=0, label="refuted", confidence=0.7)])
    >>> v.label, v.searches
    ('refuted', 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.events import Degraded
from gatedrag.factcheck.certainty import Label, VerdictCertainty
from gatedrag.factcheck.consistency import Consistency
from gatedrag.factcheck.routing import Route
from gatedrag.types import Passage, Reason, SignalValue, StepPassage


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int = Field(ge=0)


class ClaimAssessed(_Event):
    """The closed-book signals: the model's certainty about a True/False verdict, the
    consistency of its rationales for and against, and the corpus signal."""

    type: Literal["claim_assessed"] = "claim_assessed"
    certainty: VerdictCertainty
    consistency: Consistency
    corpus: list[SignalValue] = Field(default_factory=list)
    """The corpus signal's values (:mod:`gatedrag.factcheck.corpus`), when it is configured."""


class Routed(_Event):
    """The route the signals chose, with every signal's value and threshold."""

    type: Literal["routed"] = "routed"
    route: Route
    reasons: list[Reason]
    note: str


class SearchStarted(_Event):
    """A search is about to run: its query and why this query."""

    type: Literal["search_started"] = "search_started"
    query: str
    why: str
    round: int = Field(default=1, ge=1)


class Searched(_Event):
    """A search's passages (with their text), or why it found none."""

    type: Literal["searched"] = "searched"
    query: str
    passages: list[StepPassage] = Field(default_factory=list)
    error: str | None = None
    round: int = Field(default=1, ge=1)


class Judged(_Event):
    """The model's verdict certainty with the evidence gathered so far (ids of the passages it read)."""

    type: Literal["judged"] = "judged"
    certainty: VerdictCertainty
    passages: list[str] = Field(default_factory=list)
    round: int = Field(default=1, ge=1)


class Evidence(BaseModel):
    """A passage the verdict rests on, with the indices of its sentences that bear on the claim
    (where the corpus gives sentences)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    passage: Passage
    sentences: list[int] = Field(default_factory=list)


class VerdictGiven(_Event):
    """The verdict: its label, calibrated confidence (0 to 1), evidence and a short rationale."""

    type: Literal["verdict_given"] = "verdict_given"
    label: Label
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[Evidence] = Field(default_factory=list)
    rationale: str = ""
    note: str | None = None
    features: dict[str, float] = Field(default_factory=dict)
    """What the confidence was computed from (:func:`gatedrag.factcheck.checker.verdict_features`;
    what a calibration is fitted on)."""
    llm_calls: int = Field(default=0, ge=0)
    """Prompts the model was given for the claim, up to this verdict."""


FactCheckEvent = Annotated[
    ClaimAssessed | Routed | SearchStarted | Searched | Judged | Degraded | VerdictGiven, Field(discriminator="type")
]


class Verdict(BaseModel):
    """A checked claim: the verdict, its evidence and confidence, the route, the costs, every event."""

    model_config = ConfigDict(extra="forbid")
    claim: str
    label: Label
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[Evidence] = Field(default_factory=list)
    rationale: str = ""
    route: Route | None = None
    searches: int = Field(default=0, ge=0)
    llm_calls: int = Field(default=0, ge=0)
    events: list[FactCheckEvent] = Field(default_factory=list)

    @classmethod
    def from_events(cls, claim: str, events: Sequence[FactCheckEvent]) -> Verdict:
        """The verdict a complete event stream (ending in :class:`VerdictGiven`) describes."""
        last = events[-1] if events else None
        if not isinstance(last, VerdictGiven):
            raise ValueError("a fact check's event stream ends with a VerdictGiven event")
        routed = next((e for e in events if isinstance(e, Routed)), None)
        return cls(
            claim=claim,
            label=last.label,
            confidence=last.confidence,
            evidence=last.evidence,
            rationale=last.rationale,
            route=routed.route if routed else None,
            searches=sum(isinstance(e, Searched) for e in events),
            llm_calls=last.llm_calls,
            events=list(events),
        )

    @property
    def degraded(self) -> bool:
        """True when a backend failed during the check (the verdict says so in its events)."""
        return any(isinstance(e, Degraded) or (isinstance(e, Searched) and e.error) for e in self.events)


__all__ = [
    "ClaimAssessed",
    "Evidence",
    "FactCheckEvent",
    "Judged",
    "Routed",
    "SearchStarted",
    "Searched",
    "Verdict",
    "VerdictGiven",
]
