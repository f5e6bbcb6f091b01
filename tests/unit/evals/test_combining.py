"""Fitting the combined score on recorded candidates: a signal that predicts correctness is found,
calibrated out of fold, and the file round-trips."""

from __future__ import annotations

import random

import pytest

from gatedrag.errors import ConfigError
from gatedrag.evals.combining import candidate_table, fit_combiner
from gatedrag.evals.runner import QuestionRecord
from gatedrag.gate.combiner import Combiner
from gatedrag.gate.select import ScoredCandidate
from gatedrag.types import SignalValue

pytest.importorskip("sklearn")


def records(n: int, seed: int = 0) -> list[QuestionRecord]:
    """Questions with a right and a wrong candidate; P(True) separates them noisily, the
    token signal is noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cands = []
        for j, answer in enumerate(["gold", f"wrong{i}"]):
            right = answer == "gold"
            p = min(1.0, max(0.0, rng.gauss(0.7 if right else 0.35, 0.15)))
            noise = SignalValue(name="token_rag", value=rng.random())
            cands.append(
                ScoredCandidate(
                    sentence=j,
                    answer=answer,
                    rung="retrieved" if j else "closed_book",
                    signals=[noise],
                    p_true=p,
                    agreement=0.0,
                    agreement_soft=0.0,
                    score=p,
                )
            )
        out.append(
            QuestionRecord(
                id=f"q{i}",
                dataset="d",
                method="m",
                question="?",
                answers=["gold"],
                prediction="gold",
                em=1.0,
                f1=1.0,
                candidates=cands,
            )
        )
    return out


def test_the_fit_finds_the_informative_feature_and_calibrates_it(tmp_path):
    combiner = fit_combiner(records(80))
    w = dict(zip(combiner.features, combiner.weights))
    assert w["p_true"] > 0 and abs(w["p_true"]) > 3 * abs(w["signal:token_rag"])
    assert "agreement" not in combiner.features  # constant: dropped
    fitted = combiner.fitted
    assert fitted["candidates"] == 160 and fitted["questions"] == 80 and fitted["auroc_wrong_oof"] > 0.8
    assert fitted["ece_oof"] < 0.15 and fitted["feature_auroc"]["p_true"] > fitted["feature_auroc"]["signal:token_rag"]
    low = combiner.probability({"p_true": 0.2, "signal:token_rag": 0.5})
    high = combiner.probability({"p_true": 0.9, "signal:token_rag": 0.5})
    assert 0 <= low < high <= 1
    assert Combiner.load(combiner.save(tmp_path / "c.json")) == combiner
    # on questions it never saw, it still ranks right above wrong
    fresh = records(40, seed=1)
    rows, right, _ = candidate_table(fresh)
    ranked = sum(combiner.probability(a) > combiner.probability(b) for a, b in zip(rows[::2], rows[1::2]))
    assert ranked >= 30 and all(right[::2]) and not any(right[1::2])


def test_platt_calibration_and_too_little_data():
    assert fit_combiner(records(40), calibration="platt").calibration.kind == "platt"
    with pytest.raises(ConfigError, match="at least 20"):
        fit_combiner(records(5))


def test_the_selection_report_rescores_recorded_candidates():
    from gatedrag.evals.combining import selection_report

    recs = records(60, seed=3)
    report = selection_report(recs, {"fitted": fit_combiner(records(80))})
    # the right answer is always one of the two: the oracle is perfect, the last candidate is "wrong<i>"
    assert report.em_oracle == 1.0 and report.em_last == 0.0 and report.with_candidates == 60
    assert report.em_by["p_true"] > 0.8 and report.em_by["fitted"] >= report.em_by["p_true"] - 0.05
    assert set(report.auroc_wrong_by) == {"p_true", "fitted"} and report.ece_by["fitted"] is not None
    empty = QuestionRecord(id="x", dataset="d", method="m", question="?", answers=["a"], prediction="a", em=1.0, f1=1.0)
    assert selection_report([empty]).em_by["p_true"] == 1.0  # no candidates: the record's own answer
