"""Where a claim goes after its closed-book signals (PCC's quadrants, anchors §6): certainty τ
against ``alpha`` and consistency γ against ``beta`` choose one of four routes, read from a table
(:data:`QUADRANTS`), never from the order of conditions:

=================  =====================  ======================================================
τ ≥ α (certain)    γ ≥ β (consistent)     route
=================  =====================  ======================================================
yes                yes                    ``direct``: the closed-book verdict, no search
yes                no                     ``targeted_search``: one query resolving the most contradictory rationale pair
no                 yes                    ``reflect_search``: the model names what is missing, that is the query
no                 no                     ``deep_search``: rounds of search until the verdict is certain or the budget is spent
=================  =====================  ======================================================

With ``corpus_doubt``, a claim whose corpus signal fired (:mod:`~gatedrag.factcheck.corpus`: its
entities are rare in the corpus, or its heads and tails never co-occur there) counts as uncertain
whatever τ says. A route's reasons are every signal with its value and threshold, so the trace
says why.

Example:
    >>> r = route(tau=0.8, gamma=0.3, config=RoutingConfig(alpha=0.5, beta=0.6))
    >>> r.route, [(x.signal, x.value, x.threshold) for x in r.reasons]
    ('targeted_search', [('tau', 0.8, 0.5), ('gamma', 0.3, 0.6)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.types import Reason, SignalValue

Route = Literal["direct", "targeted_search", "reflect_search", "deep_search"]
ROUTES: tuple[Route, ...] = ("direct", "targeted_search", "reflect_search", "deep_search")

QUADRANTS: dict[tuple[bool, bool], Route] = {
    (True, True): "direct",
    (True, False): "targeted_search",
    (False, True): "reflect_search",
    (False, False): "deep_search",
}
"""(certain, consistent) -> route."""

NOTES: dict[Route, str] = {
    "direct": "certain and consistent: the closed-book verdict stands",
    "targeted_search": "certain but its rationales contradict each other: search for what settles the worst pair",
    "reflect_search": "uncertain but consistent: search for what the model says is missing",
    "deep_search": "uncertain and inconsistent: search in rounds",
}


class RoutingConfig(BaseModel):
    """The routing thresholds (tuned on training claims by ``gatedrag tune``, never on the evaluated ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alpha: float = Field(default=0.3, ge=0.0, le=1.0)
    """Certainty τ at or above which the closed-book verdict counts as certain."""
    beta: float = Field(default=0.5, ge=0.0, le=1.0)
    """Consistency γ at or above which the rationales count as consistent."""
    corpus_doubt: bool = False
    """A claim whose corpus signal fired counts as uncertain (needs ``factcheck.corpus_signal``)."""


class RouteDecision(BaseModel):
    """The route a claim takes and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    route: Route
    reasons: list[Reason]
    note: str


def route(*, tau: float, gamma: float, config: RoutingConfig, corpus: Sequence[SignalValue] = ()) -> RouteDecision:
    """The route of a claim with closed-book certainty ``tau``, consistency ``gamma`` and corpus
    signal values ``corpus`` (see the module doc)."""
    doubted = config.corpus_doubt and any(v.fired for v in corpus)
    chosen = QUADRANTS[(tau >= config.alpha and not doubted, gamma >= config.beta)]
    reasons = [
        Reason(signal="tau", value=tau, threshold=config.alpha),
        Reason(signal="gamma", value=gamma, threshold=config.beta),
        *(Reason(signal=v.name, value=v.value, threshold=v.threshold) for v in corpus if v.threshold is not None),
    ]
    note = NOTES[chosen] + (" (the corpus signal made the claim uncertain)" if doubted and tau >= config.alpha else "")
    return RouteDecision(route=chosen, reasons=reasons, note=note)


__all__ = ["NOTES", "QUADRANTS", "ROUTES", "Route", "RouteDecision", "RoutingConfig", "route"]
