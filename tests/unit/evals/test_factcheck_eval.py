"""The fact checker's evaluation arms: the forced variants, the routed records a threshold pair
picks, scores against hand-counted labels, the calibration fit."""

from __future__ import annotations

import pytest

from gatedrag.evals.claims import LabelledClaim
from gatedrag.evals.factcheck_eval import (
    fit_calibration,
    forced_variants,
    route_runs,
    routed_records,
    score_arm,
)
from gatedrag.factcheck.batch import ClaimRecord, EvidenceRecord
from gatedrag.factcheck.config import FactCheckConfig

GOLD = [
    LabelledClaim(id="1", claim="a", label="supported", evidence={"d1": [0]}),
    LabelledClaim(id="2", claim="b", label="refuted", evidence={"d2": [1]}),
    LabelledClaim(id="3", claim="c", label="nei"),
    LabelledClaim(id="4", claim="d", label="supported", evidence={"d4": [2]}),
]


def rec(i, label, *, conf=0.8, searches=0, tau=0.5, gamma=0.5, docs=(), calls=10, seconds=2.0):
    return ClaimRecord(
        id=i,
        claim="x",
        label=label,
        confidence=conf,
        searches=searches,
        tau=tau,
        gamma=gamma,
        llm_calls=calls,
        seconds=seconds,
        evidence=[EvidenceRecord(id=d, title=d) for d in docs],
        features={} if conf is None else {"p_label": conf, "tau_closed": tau},
    )


def test_the_variants_force_each_route_and_always_retrieve_is_one_round():
    v = forced_variants(FactCheckConfig(top_k=3))
    assert sorted(v) == ["always_retrieve", "deep_search", "direct", "reflect_search", "targeted_search"]
    assert all(c.force_route == n for n, c in v.items() if n != "always_retrieve")
    assert (v["always_retrieve"].force_route, v["always_retrieve"].deep_rounds, v["always_retrieve"].top_k) == (
        "deep_search",
        1,
        3,
    )


def test_an_arm_is_scored_against_the_gold_labels_and_counts_its_costs():
    records = [
        rec("4", "supported", docs=["d9"], searches=1, calls=20, seconds=4.0),  # any order
        rec("1", "supported", docs=["d1"], searches=1, calls=20, seconds=4.0),
        rec("2", "supported", conf=0.6),
        rec("3", None, conf=None),  # a failed check counts as nei
    ]
    s = score_arm("x", records, GOLD)
    assert s.accuracy == 3 / 4 and s.failed == 1 and s.labels == {"supported": 3, "refuted": 0, "nei": 1}
    assert s.f1 == {"supported": pytest.approx(0.8), "refuted": 0.0, "nei": 1.0}
    assert (s.searches, s.llm_calls, s.seconds) == (0.5, 15.0, 3.0)
    assert s.evidence_found == pytest.approx(1 / 3)  # claim 1 cited its gold abstract; 2 and 4 did not
    assert s.ece == pytest.approx((2 * abs(1 - 0.8) + abs(0 - 0.6) + abs(1 - 0.0)) / 4)  # per-bin gaps
    flat = score_arm("x", records, GOLD, confidence=[0.75] * 4, timed=False)
    assert flat.ece == pytest.approx(0.0) and flat.seconds is None
    with pytest.raises(ValueError, match="no record for 1 claims"):
        score_arm("x", records[:3], GOLD)


def test_routed_records_take_each_claims_quadrant_route():
    forced = {
        name: {c.id: rec(c.id, "refuted" if name != "direct" else "supported", tau=t, gamma=g) for c, t, g in rows}
        for name in forced_variants(FactCheckConfig())
        for rows in [[(GOLD[0], 0.9, 0.9), (GOLD[1], 0.9, 0.1), (GOLD[2], 0.1, 0.9), (GOLD[3], 0.1, 0.1)]]
    }
    forced["targeted_search"]["2"] = rec("2", "nei", tau=0.9, gamma=0.1)
    runs = route_runs({c.id: c.label for c in GOLD}, forced)
    picked = routed_records(runs, forced, alpha=0.5, beta=0.5)
    assert [r.label for r in picked] == ["supported", "nei", "refuted", "refuted"]


def test_a_calibration_is_fitted_on_whether_each_verdict_is_right():
    gold = {str(i): "supported" for i in range(40)}
    records = [rec(str(i), "supported" if i % 2 else "refuted", conf=0.5 + (i % 2) * 0.4 + i / 1000) for i in range(40)]
    c = fit_calibration(records, gold, kind="platt", dataset="t")
    assert c.fitted["questions"] == 40 and c.fitted["datasets"] == ["t"]
    assert c.probability(records[1].features) > 0.8 > 0.2 > c.probability(records[0].features)
