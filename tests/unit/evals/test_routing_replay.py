"""Routing replay: the verdict a threshold pair gives is the forced run of its quadrant's route; the
tuned pair maximises macro-F1 within the search budget; it matches a real routed run."""

from __future__ import annotations

import pytest
from helpers.factlm import FactLM

from gatedrag.evals.routing_replay import ClaimRuns, claim_runs, replay, tune_routing
from gatedrag.factcheck.batch import ClaimRecord
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.claims import Claim
from gatedrag.factcheck.routing import ROUTES, RoutingConfig
from gatedrag.types import Hit, Passage


def runs() -> list[ClaimRuns]:
    def verdicts(direct, searched):
        return {
            "direct": (direct, 0),
            "targeted_search": (searched, 1),
            "reflect_search": (searched, 1),
            "deep_search": (searched, 3),
        }

    return [
        ClaimRuns(id="a", gold="supported", tau=0.9, gamma=0.9, verdicts=verdicts("supported", "supported")),
        ClaimRuns(id="b", gold="refuted", tau=0.8, gamma=0.2, verdicts=verdicts("supported", "refuted")),
        ClaimRuns(id="c", gold="nei", tau=0.1, gamma=0.8, verdicts=verdicts("supported", "nei")),
        ClaimRuns(id="d", gold="refuted", tau=0.05, gamma=0.1, verdicts=verdicts("supported", "refuted")),
    ]


def test_replay_takes_each_claims_quadrant_route():
    r = replay(runs(), alpha=0.5, beta=0.5)
    assert r.labels == ["supported", "refuted", "nei", "refuted"] and r.searches_per_claim == pytest.approx(5 / 4)
    never = replay(runs(), alpha=0.0, beta=0.0)  # everything certain and consistent: direct
    assert never.labels == ["supported"] * 4 and never.searches_per_claim == 0


def test_the_tuned_pair_is_the_best_within_the_budget():
    best, table = tune_routing(runs(), [0.0, 0.5, 1.01], [0.0, 0.5, 1.01], max_searches=1.25)
    assert best.macro_f1 == 1.0 and best.searches_per_claim <= 1.25 and len(table) == 9
    cheap, _ = tune_routing(runs(), [0.0, 0.5, 1.01], [0.0, 0.5, 1.01], max_searches=0.0)
    assert cheap.searches_per_claim == 0
    with pytest.raises(ValueError, match="no threshold pair"):
        tune_routing(runs(), [1.01], [1.01], max_searches=0.5)


def test_replaying_forced_runs_gives_what_a_routed_run_gives():
    names = ["Alpha", "Beta", "Gamma", "Delta"]
    lm_kw = dict(
        closed={
            "Alpha": [(" True", 0.9), (" False", 0.05)],
            "Beta": [(" True", 0.9), (" False", 0.05)],
            "Gamma": [(" True", 0.5), (" False", 0.45)],
            "Delta": [(" True", 0.5), (" False", 0.45)],
        },
        evidence={n: [(" False", 0.8), (" True", 0.1)] for n in names},
        phi={"Alpha": 0.1, "Beta": 0.9, "Gamma": 0.1, "Delta": 0.9},
    )

    class One:
        name = "one"

        def retrieve(self, queries, k):
            return [[Hit(passage=Passage(id=q, title=q[:10], text=q), score=1.0, rank=1)] for q in queries]

    claims = [f"{n} is so." for n in names]
    base = FactCheckConfig(routing=RoutingConfig(alpha=0.4, beta=0.5), rationales=2, rationale_sentences=0)
    forced = {
        r: {
            c: ClaimRecord.of(Claim(id=c, claim=c), v, 0.0)
            for c, v in zip(
                claims, FactChecker(FactLM(**lm_kw), One(), base.model_copy(update={"force_route": r})).batch(claims)
            )
        }
        for r in ROUTES
    }
    joined = claim_runs({c: "refuted" for c in claims}, forced)
    routed = FactChecker(FactLM(**lm_kw), One(), base).batch(claims)
    assert replay(joined, alpha=0.4, beta=0.5).labels == [v.label for v in routed]


def test_corpus_doubt_replays_a_fired_claim_as_uncertain():
    a = runs()[0].model_copy(update={"corpus_fired": True})  # certain and consistent: direct, unless doubted
    assert replay([a], alpha=0.5, beta=0.5).searches_per_claim == 0
    doubted = replay([a], alpha=0.5, beta=0.5, corpus_doubt=True)
    assert doubted.searches_per_claim == 1 and doubted.corpus_doubt  # reflect-then-search
    best, table = tune_routing([a], [0.5], [0.5], max_searches=1.0, corpus_doubt=(False, True))
    assert len(table) == 2 and not best.corpus_doubt  # the same F1: the cheaper one


def test_a_label_bias_chooses_the_labels_again_from_the_recorded_masses():
    a = runs()[0].model_copy(
        update={"gold": "refuted", "masses": {"direct": {"supported": 0.6, "refuted": 0.3}}}
    )  # direct at (0.5, 0.5)
    assert replay([a], alpha=0.5, beta=0.5).labels == ["supported"]
    assert replay([a], alpha=0.5, beta=0.5, label_bias={"refuted": 1.0}).labels == ["refuted"]  # 0.3 e > 0.6
    best, table = tune_routing([a], [0.5], [0.5], max_searches=0.0, label_biases=({}, {"refuted": 1.0}))
    assert best.label_bias == {"refuted": 1.0} and best.macro_f1 > table[0].macro_f1
