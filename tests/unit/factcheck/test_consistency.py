"""Reasoning consistency γ: hand-computed matrices, and the batched rationale and judging rounds."""

from __future__ import annotations

import pytest
from helpers.scripted import ScriptedLM

from gatedrag.factcheck.consistency import consistency_of, pair_query, reasoning_consistency


def test_gamma_is_one_minus_the_mean_contradiction_over_both_directions():
    c = consistency_of([[1.0, 0.0, 0.5]], [[0.0, 0.0, 0.5]])  # K+ = 1, K- = 3
    assert c.contradiction == [[0.5, 0.0, 0.5]] and c.gamma == pytest.approx(1 - 1 / 3)
    assert c.most_contradictory == (0, 0)
    assert consistency_of([], []).gamma == 1.0 and consistency_of([], []).most_contradictory is None
    assert consistency_of([[1.0]], [[1.0]]).gamma == 0.0


def test_rationales_and_their_pairs_are_decoded_and_scored_in_one_round_each():
    lm = ScriptedLM([], [], sampled=["yes", "no"], fits={"Statement A": 0.8})
    claims = ["Aspirin thins blood.", "Water boils at 90 C."]
    out = reasoning_consistency(lm, claims, k=2)
    assert [(len(c.supporting), len(c.refuting)) for c in out] == [(2, 2), (2, 2)]
    assert all(c.gamma == pytest.approx(0.2) for c in out)  # every pair judged contradictory with p 0.8
    assert len(lm.scored) == 2 * 2 * 2 * 2  # both directions of every cross pair, both claims
    assert sum("Statement A: " + out[0].supporting[0] in p for p in lm.scored) >= 1
    assert pair_query(claims[0], out[0]).startswith("Aspirin thins blood. ")
    assert reasoning_consistency(lm, []) == []
