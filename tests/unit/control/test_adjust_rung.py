"""The gate's "adjust" rung in the pipeline: a sentence written with retrieved passages whose
tokens conflict with the model's memory is written again under knowledge control, and the trace
says so with the control settings."""

from __future__ import annotations

from gatedrag.config import (
    ConfidenceGainRule,
    DecodingConfig,
    GateConfig,
    KnowledgeControlConfig,
    PipelineConfig,
    PolicyConfig,
    TokenRAGRule,
)
from gatedrag.gate import AnswerState, Gate, Phase, Policy
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.signals.gain import ConfidenceGainSignal
from gatedrag.types import Passage, TokenStep


def _cfg(**control):
    return PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.0), ConfidenceGainRule(threshold=0.0)]),
        decoding=DecodingConfig(max_answer_tokens=24, max_sentence_tokens=6),
        policy=PolicyConfig(max_retrievals=1),
        control=KnowledgeControlConfig(**control) if control else PipelineConfig().control,
    )


def _retriever():
    return BM25Retriever.build([Passage(id="p", title="Paris", text="Paris is the capital of France.")])


def test_conflicting_sentence_is_rewritten_under_control_and_traced(tiny_lm):
    answer = GatedRAG(tiny_lm, _retriever(), _cfg()).ask("Where is Paris?")
    kinds = [(s.kind, s.decision.action if s.decision else None, s.trigger) for s in answer.steps]
    adjusted = [s for s in answer.steps if s.decision is not None and s.decision.action == "adjust"]
    assert adjusted, kinds
    step = adjusted[0]
    assert step.decision.note == "knowledge control on: adaptive, epsilon=0"
    assert step.decision.reasons[0].signal == "confidence_gain" and not step.accepted
    cg = next(v for v in step.signals if v.name == "confidence_gain")
    assert cg.fired and cg.note is None and "mean_confidence_gain" in cg.details
    rewrite = answer.steps[answer.steps.index(step) + 1]
    assert rewrite.kind == "sentence" and rewrite.trigger == "regenerated under knowledge control"
    assert rewrite.decision.action == "accept"
    assert answer.counts.adjustments == 1
    # before any retrieval there is no twin: the signal says so and never fires
    first = answer.steps[0]
    assert next(v for v in first.signals if v.name == "confidence_gain").note


def test_gate_prefers_retrieval_over_adjustment():
    steps = [
        TokenStep(token_id=1, text=" x", logprob=-2.0, entropy=2.0, confidence_gain=-1.0, conflict=True),
    ]
    state = AnswerState(phase=Phase.ANSWERING)
    both = GateConfig(rules=[TokenRAGRule(threshold=0.1), ConfidenceGainRule(threshold=0.0)])
    policy = Policy(PipelineConfig(gate=both), has_retriever=True)
    assert policy.on_sentence(Gate(both).evaluate(steps), state).kind == "retrieve"
    gate = Gate(GateConfig(rules=[TokenRAGRule(threshold=0.99), ConfidenceGainRule(threshold=0.0)]))
    action = policy.on_sentence(gate.evaluate(steps), state)
    assert action.kind == "adjust" and action.reasons[0].signal == "confidence_gain"
    assert isinstance(gate.signals[1], ConfidenceGainSignal)


def test_no_adjust_rung_means_no_twin(tiny_lm):
    cfg = _cfg().model_copy(update={"gate": GateConfig(rules=[TokenRAGRule(threshold=0.0)])})
    answer = GatedRAG(tiny_lm, _retriever(), cfg).ask("Where is Paris?")
    assert answer.counts.adjustments == 0
    assert all(s.decision is None or s.decision.action != "adjust" for s in answer.steps)


def test_always_mode_decodes_every_passage_sentence_under_control(tiny_lm):
    base = PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.99, act=False)]),
        decoding=DecodingConfig(max_answer_tokens=16, max_sentence_tokens=6),
        policy=PolicyConfig(retrieve_first=True),
    )
    plain = GatedRAG(tiny_lm, _retriever(), base).ask("Where is Paris?")
    always = base.policy.model_copy(update={"control_mode": "always"})
    noop = base.model_copy(update={"policy": always, "control": KnowledgeControlConfig(alpha=0.5, epsilon=1)})
    assert GatedRAG(tiny_lm, _retriever(), noop).ask("Where is Paris?").text == plain.text
    memory = base.model_copy(update={"policy": always, "control": KnowledgeControlConfig(alpha=1.0, epsilon=1)})
    controlled = GatedRAG(tiny_lm, _retriever(), memory).ask("Where is Paris?")
    assert controlled.text != plain.text and controlled.counts.adjustments == 0
    assert controlled.counts.prompt_tokens > plain.counts.prompt_tokens  # the twin's prompt is paid for
