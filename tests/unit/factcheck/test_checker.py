"""The fact checker end to end on a scripted model: each route, deep search's rounds and stop, not
enough information when nothing is found, degraded backends, the trace."""

from __future__ import annotations

import math

import pytest
from helpers.factlm import FactLM, OnePassage

from gatedrag.errors import ConfigError, InputError
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.events import Verdict
from gatedrag.factcheck.routing import RoutingConfig
from gatedrag.factcheck.sentences import split_sentences
from gatedrag.types import Hit, Passage, SignalValue

SURE = [(" True", 0.9), (" False", 0.05)]
UNSURE = [(" True", 0.5), (" False", 0.45)]
CONFIG = FactCheckConfig(routing=RoutingConfig(alpha=0.4, beta=0.5), rationales=2, deep_rounds=3)


class EchoRetriever:
    """Finds one passage per query, named after the query."""

    name = "echo"

    def __init__(self, empty: bool = False, fail: bool = False):
        self.queries: list[str] = []
        self.empty, self.fail = empty, fail

    def retrieve(self, queries, k):
        self.queries += list(queries)
        if self.fail:
            raise ConnectionError("search backend is down")
        return [
            [] if self.empty else [Hit(passage=Passage(id=q, title=q[:20], text=f"About {q}."), score=1.0, rank=1)]
            for q in queries
        ]


def lm() -> FactLM:
    return FactLM(
        closed={"Alpha": SURE, "Beta": SURE, "Gamma": UNSURE, "Delta": UNSURE, "Omega": UNSURE},
        evidence={
            "Beta": [(" False", 0.8), (" True", 0.1)],
            "Gamma": [(" True", 0.7), (" Unknown", 0.2)],
            "Delta": [(" True", 0.4), (" False", 0.35), (" Unknown", 0.2)],
            "Omega": [(" False", 0.9), (" True", 0.05)],
        },
        phi={"Alpha": 0.1, "Beta": 0.9, "Gamma": 0.1, "Delta": 0.9, "Omega": 0.9},
    )


def test_each_route_searches_as_its_quadrant_says_and_the_trace_says_why():
    model, retriever = lm(), EchoRetriever()
    streamed: dict[int, list] = {}
    verdicts = FactChecker(model, retriever, CONFIG).batch(
        ["Alpha is so.", "Beta is so.", "Gamma is so.", "Delta is so."],
        on_event=lambda i, e: streamed.setdefault(i, []).append(e),
    )
    assert [v.route for v in verdicts] == ["direct", "targeted_search", "reflect_search", "deep_search"]
    assert [v.searches for v in verdicts] == [0, 1, 1, 3]  # deep search: every round uncertain, budget spent
    assert [v.label for v in verdicts] == ["supported", "refuted", "supported", "supported"]
    alpha, beta, gamma, delta = verdicts
    assert not alpha.evidence and alpha.rationale == "For Alpha" and alpha.confidence == pytest.approx(0.9 / 0.95)
    assert retriever.queries[0] == "Beta is so. For Beta Against Beta"  # the worst pair
    assert "look up Gamma" in retriever.queries  # what the model said was missing
    assert retriever.queries.count("Delta is so.") == 1  # round 1 searches the claim, later rounds reflect
    assert [e.passage.id for e in beta.evidence] and beta.confidence == pytest.approx(0.8 / 0.9)
    routed = next(e for e in gamma.events if e.type == "routed")
    assert [(r.signal, r.threshold) for r in routed.reasons] == [("tau", 0.4), ("gamma", 0.5)]
    assert len([e for e in delta.events if e.type == "judged"]) == 3 and not delta.degraded
    for i, v in enumerate(verdicts):
        assert streamed[i] == v.events and v.events[-1].type == "verdict_given"
        assert Verdict.model_validate_json(v.model_dump_json()) == v


def test_a_deep_search_stops_as_soon_as_its_verdict_is_certain():
    v = FactChecker(lm(), EchoRetriever(), CONFIG).check("Omega is so.")
    assert v.route == "deep_search" and v.searches == 1 and v.label == "refuted"


@pytest.mark.parametrize(
    ("retriever", "why"),
    [
        (EchoRetriever(empty=True), "no passage matched"),
        (EchoRetriever(fail=True), "retriever failed"),
        (None, "no corpus"),
    ],
)
def test_nothing_found_is_not_enough_information_never_a_guess(retriever, why):
    v = FactChecker(lm(), retriever, CONFIG).check("Beta is so.")
    assert v.route == "targeted_search" and v.label == "nei" and not v.evidence
    assert v.degraded and any(e.type == "searched" and why in (e.error or "") for e in v.events)
    assert "not enough information" in v.events[-1].note


def test_bad_claims_are_refused_before_anything_runs():
    model = lm()
    checker = FactChecker(model, EchoRetriever(), CONFIG)
    for bad in ("", "  ", None, 4):
        with pytest.raises(InputError):
            checker.check(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        checker.batch("Alpha is so.")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        checker.batch(["Alpha is so.", ""])
    assert model.verdict_prompts == [] and checker.batch([]) == []


def test_claims_are_checked_batch_size_at_a_time_with_the_same_verdicts():
    claims = ["Alpha is so.", "Beta is so.", "Gamma is so.", "Delta is so.", "Omega is so."]
    together = FactChecker(lm(), EchoRetriever(), CONFIG).batch(claims)
    model = lm()
    grouped = FactChecker(model, EchoRetriever(), CONFIG.model_copy(update={"batch_size": 2})).batch(claims)
    assert [v.model_dump() for v in grouped] == [v.model_dump() for v in together]
    assert model.closed_batches == [2, 2, 1]


def test_the_confidence_shown_is_the_calibration_of_the_verdicts_features():
    from gatedrag.factcheck.checker import VERDICT_FEATURES
    from gatedrag.gate.combiner import Combiner

    plain = FactChecker(lm(), EchoRetriever(), CONFIG).batch(["Alpha is so.", "Beta is so."])
    features = [v.events[-1].features for v in plain]
    assert features[0]["route:direct"] == 1.0 and "tau_evidence" not in features[0]
    assert (
        features[1]["route:targeted_search"] == 1.0 and features[1]["tau_evidence"] > 0 and features[1]["searches"] == 1
    )
    assert all(set(f) <= set(VERDICT_FEATURES) for f in features)
    assert [v.confidence for v in plain] == [f["p_label"] for f in features]
    calibration = Combiner(
        features=["tau_closed", "gamma"], weights=[1.0, -2.0], bias=0.1, mean=[0.5, 0.5], scale=[0.2, 0.3]
    )
    calibrated = FactChecker(lm(), EchoRetriever(), CONFIG, calibration=calibration).batch(
        ["Alpha is so.", "Beta is so."]
    )
    assert [v.confidence for v in calibrated] == [pytest.approx(calibration.probability(f)) for f in features]
    assert [v.label for v in calibrated] == [v.label for v in plain]  # calibration changes the confidence only


def test_evidence_names_the_sentences_whose_own_verdict_is_the_claims():
    class Abstract:
        name = "abstract"

        def retrieve(self, queries, k):
            text = "Water boils at 100 degrees. The sky is blue. Ice melts at 0 degrees."
            return [[Hit(passage=Passage(id="d1", title="Water", text=text), score=1.0, rank=1)] for _ in queries]

    model = FactLM(
        closed={"Beta": SURE},
        evidence={"Beta": [(" False", 0.8), (" True", 0.1)]},
        phi={"Beta": 0.9},
        by_text={
            "Water boils at 100 degrees.": [(" False", 0.9), (" True", 0.05)],
            "The sky is blue.": [(" Unknown", 0.9)],
            "Ice melts at 0 degrees.": [(" False", 0.6), (" True", 0.3)],
        },
    )
    claim = "Beta: water boils and ice melts."  # the sky sentence shares no word with it: never judged
    v = FactChecker(model, Abstract(), CONFIG).check(claim)
    assert v.label == "refuted" and [(e.passage.id, e.sentences) for e in v.evidence] == [("d1", [0, 2])]
    one = FactChecker(model, Abstract(), CONFIG.model_copy(update={"rationale_candidates": 1})).check(claim)
    assert one.evidence[0].sentences == [0] and one.llm_calls == v.llm_calls - 1  # a tie: the earlier sentence
    official = {
        "d1": ["Ice melts at 0 degrees.", "The sky is blue.", "Water boils at 100 degrees."]
    }  # the corpus's own order
    v = FactChecker(model, Abstract(), CONFIG, sentences=lambda p: official[p.id]).check(claim)
    assert v.evidence[0].sentences == [2, 0]  # surest first, in the corpus's indices
    off = FactChecker(model, Abstract(), CONFIG.model_copy(update={"rationale_sentences": 0})).check(claim)
    assert off.evidence[0].sentences == []


def test_a_forced_route_overrides_the_signals_and_says_so():
    never = FactChecker(lm(), EchoRetriever(), CONFIG.model_copy(update={"force_route": "direct"})).check(
        "Delta is so."
    )
    assert never.route == "direct" and never.searches == 0
    routed = next(e for e in never.events if e.type == "routed")
    assert "forced" in routed.note and "deep_search" in routed.note
    retriever = EchoRetriever()
    once = CONFIG.model_copy(update={"force_route": "deep_search", "deep_rounds": 1})
    v = FactChecker(lm(), retriever, once).check("Alpha is so.")  # certain and consistent, searched anyway
    assert v.route == "deep_search" and v.searches == 1 and retriever.queries == ["Alpha is so."]


def test_a_sweep_gives_each_variant_the_verdicts_its_own_run_gives_from_one_assessment():
    claims = ["Alpha is so.", "Beta is so.", "Gamma is so.", "Delta is so."]
    variants = {
        "routed": CONFIG,
        "never": CONFIG.model_copy(update={"force_route": "direct"}),
        "once": CONFIG.model_copy(update={"force_route": "deep_search", "deep_rounds": 1}),
        "deep": CONFIG.model_copy(update={"force_route": "deep_search"}),
    }
    model = lm()
    swept = FactChecker(model, EchoRetriever(), CONFIG).sweep(claims, variants)
    assert model.closed_batches == [4]  # the closed-book verdict ran once for all variants
    assert len(model.verdict_prompts) == len(set(model.verdict_prompts))  # a prompt two variants share ran once
    for name, variant in variants.items():
        alone = FactChecker(lm(), EchoRetriever(), variant).batch(claims)
        assert [v.model_dump() for v in swept[name]] == [v.model_dump() for v in alone], name
    with pytest.raises(ConfigError, match="assessed"):
        FactChecker(model, EchoRetriever(), CONFIG).sweep(claims, {"k": CONFIG.model_copy(update={"rationales": 3})})


def test_llm_calls_count_every_prompt_the_claim_took():
    model, retriever = lm(), EchoRetriever()
    direct, targeted, reflect, deep = FactChecker(model, retriever, CONFIG).batch(
        ["Alpha is so.", "Beta is so.", "Gamma is so.", "Delta is so."]
    )
    assessed = 1 + 2 * 2 + 2 * 2 * 2  # closed verdict, K=2 rationales a side, every cross pair both ways

    def sentences(v):  # one prompt per sentence of each evidence passage, to name the rationale sentences
        return sum(len(split_sentences(e.passage.text)) for e in v.evidence)

    assert sentences(targeted) == 2 and sentences(deep) == 2  # deep search's rounds 2 and 3 found one passage
    assert direct.llm_calls == assessed
    assert targeted.llm_calls == assessed + 1 + sentences(targeted)  # one verdict with evidence
    assert reflect.llm_calls == assessed + 1 + 1 + sentences(reflect)  # the reflect query, the verdict
    assert deep.llm_calls == assessed + 3 + 2 + sentences(deep)  # three verdicts, two reflect queries
    assert deep.events[-1].llm_calls == deep.llm_calls


class Rare:
    """A corpus signal that fires for the claims naming a rare entity (and can be made to fail)."""

    def __init__(self, rare: set[str], fail: bool = False):
        self.rare, self.fail, self.seen = rare, fail, []

    def evaluate(self, claims):
        self.seen.append(list(claims))
        if self.fail:
            raise TimeoutError("corpus index unreachable")
        return [
            [
                SignalValue(
                    name="entity_freq",
                    value=3.0 if any(r in c for r in self.rare) else 0.1,
                    threshold=1.0,
                    fired=any(r in c for r in self.rare),
                )
            ]
            for c in claims
        ]


def test_the_corpus_signal_is_traced_a_feature_and_with_corpus_doubt_a_reason_to_search():
    config = CONFIG.model_copy(update={"corpus_signal": True})
    claims = ["Alpha is so.", "Alpha Zeta is so."]
    corpus = Rare({"Zeta"})
    plain, rare = FactChecker(lm(), EchoRetriever(), config, corpus=corpus).batch(claims)
    assert corpus.seen == [claims]  # one batched call
    assert [plain.route, rare.route] == ["direct", "direct"]  # traced only
    assessed = rare.events[0]
    assert assessed.type == "claim_assessed" and assessed.corpus[0].fired
    assert rare.events[-1].features["corpus_fired"] == 1.0 and rare.events[-1].features["corpus:entity_freq"] == 3.0
    doubting = config.model_copy(update={"routing": config.routing.model_copy(update={"corpus_doubt": True})})
    plain, rare = FactChecker(lm(), EchoRetriever(), doubting, corpus=Rare({"Zeta"})).batch(claims)
    assert [plain.route, rare.route] == ["direct", "reflect_search"]
    routed = next(e for e in rare.events if e.type == "routed")
    assert [r.signal for r in routed.reasons] == ["tau", "gamma", "entity_freq"]


def test_a_failing_corpus_signal_is_traced_and_decides_nothing():
    config = CONFIG.model_copy(
        update={"corpus_signal": True, "routing": RoutingConfig(alpha=0.4, beta=0.5, corpus_doubt=True)}
    )
    v = FactChecker(lm(), EchoRetriever(), config, corpus=Rare({"Alpha"}, fail=True)).check("Alpha is so.")
    assert v.route == "direct" and "unavailable: TimeoutError" in (v.events[0].corpus[0].error or "")
    assert v.degraded and v.events[1].type == "degraded" and "TimeoutError" in v.events[1].error
    assert v.events[-1].features["corpus_fired"] == 0.0 and "corpus:entity_freq" not in v.events[-1].features


def test_the_corpus_signal_setting_and_component_come_together():
    with pytest.raises(ConfigError, match="corpus_signal"):
        FactChecker(lm(), EchoRetriever(), CONFIG.model_copy(update={"corpus_signal": True}))
    with pytest.raises(ConfigError, match="corpus_signal"):
        FactChecker(lm(), EchoRetriever(), CONFIG, corpus=Rare(set()))


def test_label_bias_shifts_the_chosen_label_but_not_the_routing():
    claims = [
        "Alpha is so.",
        "Gamma is so.",
    ]  # direct (closed book: True 0.9, False 0.05); reflect (True 0.7, Unknown 0.2)
    plain = FactChecker(lm(), EchoRetriever(), CONFIG).batch(claims)
    biased = FactChecker(
        lm(), EchoRetriever(), CONFIG.model_copy(update={"label_bias": {"refuted": 3.0, "nei": 1.5}})
    ).batch(claims)
    assert [v.label for v in plain] == ["supported", "supported"]
    assert [v.label for v in biased] == ["refuted", "nei"]  # 0.05 e^3 > 0.9; 0.2 e^1.5 > 0.7
    assert [v.route for v in biased] == [v.route for v in plain]
    assert biased[0].confidence == pytest.approx(0.05 * math.exp(3) / (0.05 * math.exp(3) + 0.9))
    assert not biased[1].evidence[0].sentences  # a nei verdict names no rationale sentences


def test_evidence_that_does_not_address_the_claim_gives_not_enough_information_whatever_the_model_says():
    model = FactLM(closed={"Gamma": UNSURE}, evidence={"Gamma": [(" True", 0.9)]}, phi={"Gamma": 0.1})
    unrelated = OnePassage("Loans", "Loan modification changes the terms of a mortgage.")
    v = FactChecker(model, unrelated, CONFIG).check("Gamma rays ionise atoms.")
    assert v.label == "nei" and v.searches == 1 and "does not address the claim" in (v.events[-1].note or "")
    assert v.events[-1].features["evidence_overlap"] == 0.0
    lenient = CONFIG.model_copy(update={"min_evidence_overlap": 0.0})
    assert FactChecker(model, unrelated, lenient).check("Gamma rays ionise atoms.").label == "supported"


def test_a_sweep_shares_the_corpus_signal_with_its_variants():
    config = CONFIG.model_copy(update={"corpus_signal": True})
    doubting = config.model_copy(update={"routing": config.routing.model_copy(update={"corpus_doubt": True})})
    corpus = Rare({"Zeta"})
    swept = FactChecker(lm(), EchoRetriever(), config, corpus=corpus).sweep(
        ["Alpha Zeta is so."], {"plain": config, "doubting": doubting}
    )
    assert corpus.seen == [["Alpha Zeta is so."]]  # once for both
    assert [swept["plain"][0].route, swept["doubting"][0].route] == ["direct", "reflect_search"]
