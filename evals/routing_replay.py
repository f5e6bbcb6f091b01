"""Tuning the fact checker's routing thresholds by replay: every training claim is checked once down
each route (``force_route``), and since a claim's closed-book signals (τ, γ) do not depend on the
route, the verdict any (α, β) would give is the forced run of the route its quadrant picks; every
threshold pair is scored without checking anything again.

The chosen pair maximises macro-F1 among those within the search budget (searches per claim),
ties going to fewer searches.

Example:
    >>> runs = [ClaimRuns(id="1", gold="refuted", tau=0.9, gamma=0.9,
    ...                   verdicts={"direct": ("supported", 0), "targeted_search": ("refuted", 1),
    ...                             "reflect_search": ("refuted", 1), "deep_search": ("refuted", 2)})]
    >>> replay(runs, alpha=0.5, beta=0.5).labels, replay(runs, alpha=0.95, beta=0.5).labels
    (['supported'], ['refuted'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.factcheck.batch import ClaimRecord
from gatedrag.factcheck.certainty import Label, biased_label
from gatedrag.factcheck.routing import QUADRANTS, ROUTES, Route

from .claims import verdict_scores


class ClaimRuns(BaseModel):
    """One training claim: its gold label, closed-book signals and, per route, the forced run's
    (label, searches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    gold: Label
    tau: float
    gamma: float
    corpus_fired: bool = False
    verdicts: dict[Route, tuple[Label, int]]
    masses: dict[Route, dict[Label, float]] = Field(default_factory=dict)
    """Per route, the label masses its label was chosen from (closed book for ``direct``; the last
    verdict with evidence otherwise); none: the label stands whatever the bias (nothing was judged)."""


class Replayed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    alpha: float
    beta: float
    corpus_doubt: bool = False
    label_bias: dict[Label, float] = Field(default_factory=dict)
    labels: list[Label]
    searches_per_claim: float
    macro_f1: float
    accuracy: float


def claim_runs(gold: Mapping[str, Label], forced: Mapping[Route, Mapping[str, ClaimRecord]]) -> list[ClaimRuns]:
    """Join forced runs' records (route -> claim id -> record) into one :class:`ClaimRuns` per claim
    that every route checked (a failed check, with no label, leaves the claim out)."""
    out = []
    for i in gold:
        records = [forced.get(r, {}).get(i) for r in ROUTES]
        if any(rec is None or rec.label is None or rec.tau is None or rec.gamma is None for rec in records):
            continue
        first = records[0]
        assert first is not None and first.tau is not None and first.gamma is not None
        out.append(
            ClaimRuns(
                id=i,
                gold=gold[i],
                tau=first.tau,
                gamma=first.gamma,
                corpus_fired=bool(first.corpus_fired),
                verdicts={r: (rec.label, rec.searches) for r, rec in zip(ROUTES, records)},  # type: ignore[union-attr,misc]
                masses={
                    r: dict(rec.closed_masses if r == "direct" else rec.evidence_masses)  # type: ignore[union-attr,misc]
                    for r, rec in zip(ROUTES, records)
                },
            )
        )
    return out


def _label(run: ClaimRuns, route: Route, bias: Mapping[Label, float]) -> Label:
    label = run.verdicts[route][0]
    masses = run.masses.get(route)
    if not bias or not masses:
        return label
    chosen, _ = biased_label(masses, bias)
    return chosen or "nei"


def replay(
    runs: Sequence[ClaimRuns],
    *,
    alpha: float,
    beta: float,
    corpus_doubt: bool = False,
    label_bias: Mapping[Label, float] | None = None,
) -> Replayed:
    """The verdicts and costs the thresholds (α, β) give on ``runs`` (with ``corpus_doubt``, a claim
    whose corpus signal fired counts as uncertain, as :func:`~gatedrag.factcheck.routing.route` does;
    ``label_bias``: the labels chosen again from the recorded masses, as the checker's
    ``label_bias`` chooses them)."""
    bias = dict(label_bias or {})
    routes = [QUADRANTS[(r.tau >= alpha and not (corpus_doubt and r.corpus_fired), r.gamma >= beta)] for r in runs]
    labels = [_label(r, route, bias) for r, route in zip(runs, routes)]
    scores = verdict_scores(labels, [r.gold for r in runs])
    return Replayed(
        alpha=alpha,
        beta=beta,
        corpus_doubt=corpus_doubt,
        label_bias=bias,
        labels=labels,
        searches_per_claim=sum(r.verdicts[route][1] for r, route in zip(runs, routes)) / len(runs) if runs else 0.0,
        macro_f1=scores["macro_f1"],
        accuracy=scores["accuracy"],
    )


def tune_routing(
    runs: Sequence[ClaimRuns],
    alphas: Sequence[float],
    betas: Sequence[float],
    *,
    max_searches: float,
    corpus_doubt: Sequence[bool] = (False,),
    label_biases: Sequence[Mapping[Label, float]] = ({},),
) -> tuple[Replayed, list[Replayed]]:
    """The best pair within ``max_searches`` searches per claim (see the module doc), and every pair
    scored (for each ``corpus_doubt`` setting and label bias tried). Raises ``ValueError`` when no
    pair is within the budget."""
    table = [
        replay(runs, alpha=a, beta=b, corpus_doubt=d, label_bias=bias)
        for bias in label_biases
        for d in corpus_doubt
        for a in alphas
        for b in betas
    ]
    within = [t for t in table if t.searches_per_claim <= max_searches + 1e-12]
    if not within:
        raise ValueError(f"no threshold pair keeps within {max_searches} searches per claim")
    best = max(within, key=lambda t: (t.macro_f1, -t.searches_per_claim))
    return best, table


__all__ = ["ClaimRuns", "Replayed", "claim_runs", "replay", "tune_routing"]
