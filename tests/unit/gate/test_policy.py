"""The policy on hand-built signal bundles: every action, veto, priority, hysteresis rule and budget."""

from __future__ import annotations

import pytest

from gatedrag.config import PipelineConfig, parse_config
from gatedrag.gate import LADDER, AnswerState, Phase, Policy, SignalBundle
from gatedrag.types import SignalValue


def value(name: str, v: float, threshold: float | None = 0.5, *, acting: bool = True) -> SignalValue:
    return SignalValue(
        name=name, value=v, threshold=threshold, fired=threshold is not None and v > threshold, acting=acting
    )


DOUBT = SignalBundle(values=(value("token_rag", 0.9),), rungs=("retrieve",))
SURE = SignalBundle(values=(value("token_rag", 0.1),), rungs=("retrieve",))
CONFLICT = SignalBundle(values=(value("token_rag", 0.1), value("confidence_gain", 0.8)), rungs=("retrieve", "adjust"))
BOTH = SignalBundle(values=(value("token_rag", 0.9), value("confidence_gain", 0.8)), rungs=("retrieve", "adjust"))


def policy(retriever: bool = True, **sections) -> Policy:
    return Policy(parse_config(sections), has_retriever=retriever)


def state(phase: Phase = Phase.ANSWERING, **kw) -> AnswerState:
    return AnswerState(phase=phase, **kw)


def test_accept_retrieve_and_finish():
    assert policy().on_sentence(SURE, state()).kind == "accept"
    retrieve = policy().on_sentence(DOUBT, state())
    assert retrieve.kind == "retrieve" and retrieve.query_source == "signals"
    assert [r.signal for r in retrieve.reasons] == ["token_rag"] and retrieve.vetoes == ()
    final = policy().on_sentence(SURE, state(final=True))
    assert final.kind == "finish" and final.keeps_sentence and final.decision().action == "accept"


def test_traced_signals_never_act():
    traced = SignalBundle(values=(value("token_rag", 0.9, acting=False),), rungs=("retrieve",))
    assert policy().on_sentence(traced, state()).kind == "accept"
    no_threshold = SignalBundle(values=(value("gnll", 9.0, None),), rungs=("retrieve",))
    assert policy().on_sentence(no_threshold, state()).kind == "accept"


def test_combine_all_needs_every_acting_signal():
    half = SignalBundle(values=(value("token_rag", 0.9), value("flare", 0.1)), rungs=("retrieve", "retrieve"))
    assert policy().on_sentence(half, state()).kind == "retrieve"
    assert policy(gate={"combine": "all"}).on_sentence(half, state()).kind == "accept"
    full = SignalBundle(values=(value("token_rag", 0.9), value("flare", 0.9)), rungs=("retrieve", "retrieve"))
    assert policy(gate={"combine": "all"}).on_sentence(full, state()).kind == "retrieve"


def test_retrieval_beats_adjustment_and_a_vetoed_retrieval_falls_to_it():
    assert LADDER.index("retrieve") < LADDER.index("adjust")
    assert policy().on_sentence(BOTH, state()).kind == "retrieve"
    adjust = policy().on_sentence(CONFLICT, state())
    assert adjust.kind == "adjust" and adjust.control == PipelineConfig().control
    assert adjust.note == "knowledge control on: adaptive, epsilon=0"
    fallen = policy().on_sentence(BOTH, state(retrievals=3))
    assert fallen.kind == "adjust" and [v.rule for v in fallen.vetoes] == ["retrieval_budget"]
    assert [r.signal for r in fallen.reasons] == ["confidence_gain"]


@pytest.mark.parametrize(
    ("kwargs", "sections", "rule"),
    [
        ({}, {}, None),
        ({"retriever": False}, {}, "no_retriever"),
        ({"s": {"final": True}}, {"policy": {"check_final_sentence": False}}, "final_unchecked"),
        ({"s": {"phase": Phase.REGENERATING}}, {}, "just_regenerated"),
        ({"s": {"phase": Phase.CONTROLLED}}, {}, "just_regenerated"),
        ({"s": {"phase": Phase.UNGATED}}, {}, "rest_ungated"),
        ({"s": {"retrievals": 3}}, {}, "retrieval_budget"),
        ({"s": {"retrievals": 1}}, {"policy": {"max_retrievals": 1}}, "retrieval_budget"),
    ],
)
def test_each_retrieval_veto(kwargs, sections, rule):
    p = policy(kwargs.get("retriever", True), **sections)
    action = p.on_sentence(DOUBT, state(**kwargs.get("s", {})))
    if rule is None:
        assert action.kind == "retrieve"
        return
    assert action.kind in ("accept", "finish") and [v.rule for v in action.vetoes] == [rule]
    assert action.note == action.vetoes[0].text and action.reasons[0].signal == "token_rag"


def test_veto_order_names_the_first_rule_that_applies():
    # no retriever outranks the budget; a regenerated sentence outranks the budget too
    assert policy(False).on_sentence(DOUBT, state(retrievals=9)).vetoes[0].rule == "no_retriever"
    assert policy().on_sentence(DOUBT, state(Phase.REGENERATING, retrievals=9)).vetoes[0].rule == "just_regenerated"


def test_adjustment_vetoes_hysteresis():
    on = policy().on_sentence(CONFLICT, state(control_on=True))
    assert on.kind == "accept" and on.vetoes[0].rule == "already_controlled"
    always = policy(policy={"control_mode": "always"}).on_sentence(CONFLICT, state())
    assert always.vetoes[0].rule == "already_controlled"
    rest = policy(policy={"paper": {"accept_after_retrieval": "rest"}})
    assert rest.on_sentence(CONFLICT, state(Phase.UNGATED)).vetoes[0].rule == "rest_ungated"
    assert rest.on_sentence(CONFLICT, state(Phase.REGENERATING)).vetoes[0].rule == "rest_ungated"
    assert policy().on_sentence(CONFLICT, state(Phase.REGENERATING)).kind == "adjust"


def test_scheduled_retrieval_and_drop_passages_follow_an_accepted_sentence():
    scheduled = policy(policy={"scheduled_retrieval": True, "max_retrievals": 2})
    follow = scheduled.on_sentence(SURE, state(accepted=1)).follow_up
    assert follow.kind == "scheduled_retrieval" and follow.query_source == "sentence"
    assert follow.trigger == "scheduled after sentence 2"
    assert scheduled.on_sentence(SURE, state(retrievals=2)).follow_up is None  # budget spent
    assert scheduled.on_sentence(SURE, state(final=True)).follow_up is None  # the answer is over
    chunks = policy(
        policy={"scheduled_retrieval": True, "paper": {"scheduled_query": "question"}}, decoding={"segment_tokens": 20}
    )
    follow = chunks.on_sentence(SURE, state()).follow_up
    assert follow.query_source == "question" and follow.trigger == "scheduled after chunk 1"
    drop = policy(policy={"keep_passages": False})
    assert drop.on_sentence(SURE, state(Phase.REGENERATING)).follow_up.kind == "drop_passages"
    assert drop.on_sentence(SURE, state()).follow_up is None


def test_draft_sentences_abandon_the_draft_once_within_budget():
    p = policy()
    abandon = p.on_draft_sentence(DOUBT, state(Phase.DRAFTING))
    assert abandon.kind == "retrieve" and abandon.query_source == "question"
    assert abandon.note == "draft abandoned: retrieve with the question"
    assert p.on_draft_sentence(SURE, state(Phase.DRAFTING)).kind == "accept"
    assert p.on_draft_sentence(SURE, state(Phase.DRAFTING, final=True)).kind == "finish"
    kept = p.on_draft_sentence(DOUBT, state(Phase.DRAFTING, retrievals=3))
    assert kept.kind == "accept" and kept.vetoes[0].rule == "retrieval_budget"


def test_question_check():
    p = policy()
    assert p.on_question(SURE).kind == "accept" and p.on_question(DOUBT).query_source == "question"
    refused = policy(False).on_question(DOUBT)
    assert refused.kind == "accept" and refused.note == "no retriever configured"


def test_actions_and_bundles_are_immutable():
    action = policy().on_sentence(DOUBT, state())
    with pytest.raises(ValueError):
        action.kind = "accept"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        DOUBT.values = ()  # type: ignore[misc]


def test_deep_search_comes_first_on_the_ladder_and_is_vetoed_like_retrieval():
    deep = SignalBundle(values=(value("token_rag", 0.9), value("deeper", 0.9)), rungs=("retrieve", "deep_search"))
    action = policy().on_sentence(deep, state())
    assert action.kind == "deep_search" and [r.signal for r in action.reasons] == ["deeper"]
    fallen = policy().on_sentence(deep, state(retrievals=3))
    assert fallen.kind == "accept" and [v.rung for v in fallen.vetoes] == ["deep_search", "retrieve"]
