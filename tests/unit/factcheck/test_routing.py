"""Routing on hand-built signal values: each quadrant, the thresholds inclusive, the reasons traced."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gatedrag.factcheck.routing import ROUTES, RoutingConfig, route
from gatedrag.types import SignalValue

CONFIG = RoutingConfig(alpha=0.4, beta=0.6)


@pytest.mark.parametrize(
    ("tau", "gamma", "want"),
    [
        (0.9, 0.9, "direct"),
        (0.4, 0.6, "direct"),  # at a threshold counts as over it
        (0.9, 0.1, "targeted_search"),
        (0.1, 0.9, "reflect_search"),
        (0.39, 0.59, "deep_search"),
        (0.0, 0.0, "deep_search"),
    ],
)
def test_each_quadrant_takes_its_route(tau, gamma, want):
    decision = route(tau=tau, gamma=gamma, config=CONFIG)
    assert decision.route == want and decision.note
    assert [(r.signal, r.value, r.threshold) for r in decision.reasons] == [("tau", tau, 0.4), ("gamma", gamma, 0.6)]


def test_every_route_is_reachable_and_thresholds_are_validated():
    seen = {route(tau=t, gamma=g, config=CONFIG).route for t in (0.0, 1.0) for g in (0.0, 1.0)}
    assert seen == set(ROUTES)
    with pytest.raises(ValidationError):
        RoutingConfig(alpha=1.5)


def test_a_fired_corpus_signal_makes_a_certain_claim_uncertain_only_with_corpus_doubt():
    rare = SignalValue(name="entity_freq", value=3.0, threshold=0.0, fired=True)
    common = SignalValue(name="cooc", value=0.0, threshold=0.5, fired=False)
    doubting = CONFIG.model_copy(update={"corpus_doubt": True})
    assert route(tau=0.9, gamma=0.9, config=CONFIG, corpus=[rare]).route == "direct"  # traced, not acted on
    assert route(tau=0.9, gamma=0.9, config=doubting, corpus=[common]).route == "direct"
    d = route(tau=0.9, gamma=0.9, config=doubting, corpus=[rare, common])
    assert d.route == "reflect_search" and "corpus signal" in d.note
    assert route(tau=0.9, gamma=0.1, config=doubting, corpus=[rare]).route == "deep_search"
    assert [r.signal for r in d.reasons] == ["tau", "gamma", "entity_freq", "cooc"]
