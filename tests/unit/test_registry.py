"""A signal registered in a test is usable from the config, the gate, tuning and the report
without touching any of them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import pytest
from pydantic import Field

from gatedrag.config import RULES, RuleBase, parse_config
from gatedrag.evals.report import signal_order
from gatedrag.evals.tuning import fired_threshold, replayable_signals, with_threshold
from gatedrag.gate import AnswerState, Gate, Phase, Policy
from gatedrag.signals.base import Family, SentenceContext, SignalBase, span_of
from gatedrag.signals.registry import REGISTRY, register, signal_class
from gatedrag.types import SignalValue, TokenStep


class LongTailRule(RuleBase):
    """Fires when the sentence's least likely token has log-probability below ``-threshold`` nats."""

    signal: Literal["long_tail"] = "long_tail"
    threshold: float = Field(default=3.0, ge=0.0)


class LongTailSignal(SignalBase):
    name: ClassVar[str] = "long_tail"
    family: ClassVar[Family] = "token"
    unit: ClassVar[str] = "nats"

    def __init__(self, threshold: float = 3.0, act: bool = True):
        self.threshold, self.act = threshold, act

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        worst = max(range(len(tokens)), key=lambda i: -tokens[i].logprob) if tokens else None
        value = -tokens[worst].logprob if worst is not None else 0.0
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=value > self.threshold,
            span=span_of(tokens, [worst] if worst is not None else []),
            token_indices=[worst] if worst is not None else [],
        )


@pytest.fixture
def registered():
    register(LongTailRule, LongTailSignal)
    yield
    RULES.pop("long_tail", None)
    REGISTRY.pop("long_tail", None)


def tokens(*probs: float) -> list[TokenStep]:
    return [TokenStep(token_id=i, text=f" w{i}", logprob=math.log(p), entropy=1.0) for i, p in enumerate(probs)]


def test_a_registered_signal_works_everywhere(registered):
    cfg = parse_config({"gate": {"rules": [{"signal": "long_tail", "threshold": 2.0}]}})
    assert isinstance(cfg.gate.rules[0], LongTailRule) and signal_class("long_tail") is LongTailSignal
    assert parse_config(cfg.model_dump(mode="json")) == cfg  # round trip through YAML/JSON data
    bundle = Gate(cfg.gate).evaluate(tokens(0.9, 0.05))  # -log 0.05 = 3.0 nats > 2.0
    action = Policy(cfg, has_retriever=True).on_sentence(bundle, AnswerState(phase=Phase.ANSWERING))
    assert action.kind == "retrieve" and action.reasons[0].signal == "long_tail"
    tuned = with_threshold(cfg, "long_tail", 4.0)
    assert tuned.gate.rules[0].threshold == 4.0 and "long_tail" in replayable_signals()
    assert fired_threshold("long_tail", 4.0) == 4.0
    assert signal_order({"confidence", "zeta", "long_tail", "token_rag"}) == [
        "token_rag",
        "long_tail",
        "zeta",
        "confidence",
    ]
    assert (
        parse_config({"draft": {"rules": [{"signal": "long_tail", "threshold": 1.0}]}}).draft.rules[0].signal
        == "long_tail"
    )


def test_registration_checks_the_rule_against_the_signal():
    class Wrong(RuleBase):
        signal: Literal["other"] = "other"

    with pytest.raises(ValueError, match="names signal"):
        register(Wrong, LongTailSignal)
    assert "long_tail" not in RULES
