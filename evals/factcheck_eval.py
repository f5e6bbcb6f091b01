"""The fact checker's evaluation: the forced variants a sweep runs (the baselines and the routes a
routing replay is tuned from), the routed verdicts a threshold pair picks out of them, the
calibration fitted on training claims, and each arm's scores.

Arms compared on the same claims (SciFact dev: issue 20): ``never`` (the closed-book verdict),
``always_retrieve`` (one search with the claim, top 3), ``always_deep`` (deep search on every
claim), and gatedrag's routing (tuned on training claims; replayed from the forced runs and run for
real). Every arm's LLM calls count the closed-book assessment (τ, γ) the sweep shares; the
baselines' own calls are that count minus :func:`assessment_calls`.

Example:
    >>> base = FactCheckConfig(rationales=2)
    >>> {n: (v.force_route, v.deep_rounds) for n, v in forced_variants(base).items()}["always_retrieve"]
    ('deep_search', 1)
    >>> assessment_calls(base)
    13
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gatedrag.errors import ConfigError
from gatedrag.factcheck.batch import ClaimRecord
from gatedrag.factcheck.certainty import LABELS, Label
from gatedrag.factcheck.config import FactCheckConfig
from gatedrag.factcheck.routing import QUADRANTS, ROUTES
from gatedrag.gate.combiner import Combiner

from .calibration import ReliabilityBin, ece, reliability
from .claims import LabelledClaim, verdict_scores
from .combining import fit_table
from .routing_replay import ClaimRuns, claim_runs

BASELINES: dict[str, str] = {"never": "direct", "always_retrieve": "always_retrieve", "always_deep": "deep_search"}
"""Baseline arm -> the forced variant it is."""


def forced_variants(base: FactCheckConfig) -> dict[str, FactCheckConfig]:
    """Every variant a sweep runs: each route forced (named after it: the runs a replay picks from;
    ``direct`` is the never-retrieve baseline), and always-retrieve (deep search of one round: the
    claim as the query)."""
    out: dict[str, FactCheckConfig] = {r: base.model_copy(update={"force_route": r}) for r in ROUTES}
    out["always_retrieve"] = base.model_copy(update={"force_route": "deep_search", "deep_rounds": 1})
    return out


def assessment_calls(config: FactCheckConfig) -> int:
    """Prompts the closed-book assessment gives the model per claim: the verdict, 2K rationales, 2K² pairs."""
    k = config.rationales
    return 1 + 2 * k + 2 * k * k


def route_runs(gold: Mapping[str, Label], forced: Mapping[str, Mapping[str, ClaimRecord]]) -> list[ClaimRuns]:
    """The routing replay's input from a sweep's records (variant name -> claim id -> record)."""
    return claim_runs(gold, {r: forced[r] for r in ROUTES})


def routed_records(
    runs: Sequence[ClaimRuns], forced: Mapping[str, Mapping[str, ClaimRecord]], *, alpha: float, beta: float
) -> list[ClaimRecord]:
    """For each claim, the record of the route (α, β) picks for it (what a routed run gives)."""
    return [forced[QUADRANTS[(r.tau >= alpha, r.gamma >= beta)]][r.id] for r in runs]


def fit_calibration(
    records: Sequence[ClaimRecord],
    gold: Mapping[str, Label],
    *,
    kind: Literal["isotonic", "platt"] = "platt",
    dataset: str = "claims",
) -> Combiner:
    """A calibration of the verdicts' confidence: a combiner of their features fitted on whether
    each label is right (folds by claim; its out-of-fold ECE in ``fitted``)."""
    usable = [r for r in records if r.label is not None and r.features]
    if not usable:
        raise ConfigError("no verdict with features to fit a calibration on")
    rows = [r.features for r in usable]
    right = [r.label == gold[r.id] for r in usable]
    return fit_table(rows, right, [f"{dataset}/{r.id}" for r in usable], calibration=kind)


class ArmScores(BaseModel):
    """One arm's verdict quality and cost on a set of claims."""

    model_config = ConfigDict(extra="forbid")
    arm: str
    claims: int
    failed: int
    accuracy: float
    macro_f1: float
    f1: dict[str, float]
    ece: float | None
    """Of the confidence shown (calibrated where the arm had a calibration)."""
    searches: float
    """Per claim."""
    llm_calls: float
    """Per claim, the shared assessment included."""
    seconds: float | None
    """Wall time per claim (``None`` where the records come from a shared sweep)."""
    evidence_found: float | None
    """Of the claims with gold evidence, the share whose verdict cited one of the gold abstracts."""
    labels: dict[str, int]
    """How often each label was given."""
    reliability: list[ReliabilityBin]


def score_arm(
    arm: str,
    records: Sequence[ClaimRecord],
    claims: Sequence[LabelledClaim],
    *,
    confidence: Sequence[float] | None = None,
    timed: bool = True,
) -> ArmScores:
    """Score ``records`` (one per claim of ``claims``, any order) against the gold labels; a failed
    check (no label) counts as ``nei`` with confidence 0. ``confidence``: the confidences to judge calibration
    by, in ``records``' order (default: the recorded ones)."""
    by_id = {r.id: r for r in records}
    missing = [c.id for c in claims if c.id not in by_id]
    if missing:
        raise ValueError(f"{arm}: no record for {len(missing)} claims (first {missing[0]})")
    ordered = [by_id[c.id] for c in claims]
    conf_by_id = dict(zip((r.id for r in records), confidence)) if confidence is not None else {}
    predicted: list[Label] = [r.label or "nei" for r in ordered]
    gold: list[Label] = [c.label for c in claims]
    scores = verdict_scores(predicted, gold)
    conf = [conf_by_id.get(r.id, r.confidence if r.confidence is not None else 0.0) for r in ordered]
    right = [p == g for p, g in zip(predicted, gold)]
    with_evidence = [(r, c) for r, c in zip(ordered, claims) if c.evidence]
    found = [any(e.id in c.evidence for e in r.evidence) for r, c in with_evidence]
    n = len(ordered)
    return ArmScores(
        arm=arm,
        claims=n,
        failed=sum(r.label is None for r in ordered),
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        f1=scores["f1"],
        ece=ece(conf, right),
        searches=sum(r.searches for r in ordered) / n,
        llm_calls=sum(r.llm_calls for r in ordered) / n,
        seconds=sum(r.seconds for r in ordered) / n if timed else None,
        evidence_found=sum(found) / len(found) if found else None,
        labels={lab: predicted.count(lab) for lab in LABELS},
        reliability=reliability(conf, right),
    )


__all__ = [
    "BASELINES",
    "ArmScores",
    "assessment_calls",
    "fit_calibration",
    "forced_variants",
    "route_runs",
    "routed_records",
    "score_arm",
]
