import math

import pytest

from gatedrag.config import EntropyRule, FlareRule, GateConfig, GNLLRule, TokenRAGRule
from gatedrag.gate import Gate
from gatedrag.signals import EntropySignal, FlareSignal, GNLLSignal, TokenRAGSignal
from gatedrag.types import TokenStep


def toks(*probs, entropy=1.0):
    return [TokenStep(token_id=i, text=f" w{i}", logprob=math.log(p), entropy=entropy) for i, p in enumerate(probs)]


def test_flare_fires_on_any_token_below_theta_and_masks_below_beta():
    s = FlareSignal(theta=0.8, beta=0.4)
    v = s.evaluate(toks(0.99, 0.79, 0.95, 0.3))
    assert v.fired and v.token_indices == [1, 3]
    assert v.value == pytest.approx(1 - 0.3) and v.threshold == pytest.approx(0.2)
    assert s.query_mask(toks(0.99, 0.79, 0.95, 0.3)) == {3}
    assert s.query_mask(toks(0.4)) == {0}  # mask is p <= beta


def test_flare_accepts_when_every_token_is_at_least_theta():
    v = FlareSignal(theta=0.8).evaluate(toks(0.8, 0.9, 0.999))
    assert not v.fired and v.token_indices == []


def test_token_rag_is_mean_one_minus_p():
    v = TokenRAGSignal(threshold=0.1).evaluate(toks(0.9, 0.7, 1.0))
    assert v.value == pytest.approx((0.1 + 0.3 + 0.0) / 3)
    assert v.fired  # 0.1333 > 0.1
    assert v.token_indices == [1]  # 1 - p > theta (0.1 is not > 0.1)
    assert not TokenRAGSignal(threshold=0.2).evaluate(toks(0.9, 0.7, 1.0)).fired


def test_gnll_sums_negative_logprobs_and_normalises():
    t = toks(0.5, 0.25)
    assert GNLLSignal().evaluate(t).value == pytest.approx(math.log(2) + math.log(4))
    assert GNLLSignal(normalize=True).evaluate(t).value == pytest.approx((math.log(2) + math.log(4)) / 2)
    v = GNLLSignal(threshold=1.0).evaluate(t)
    assert v.fired and v.token_indices == [1]


def test_entropy_max_and_mean():
    t = [
        TokenStep(token_id=0, text="a", logprob=-0.1, entropy=0.5),
        TokenStep(token_id=1, text="b", logprob=-0.1, entropy=2.5),
    ]
    assert EntropySignal(aggregate="max").evaluate(t).value == 2.5
    assert EntropySignal(aggregate="mean").evaluate(t).value == 1.5
    assert not EntropySignal().evaluate(t).fired  # no threshold: traced only


@pytest.mark.parametrize("signal", [FlareSignal(), TokenRAGSignal(), GNLLSignal(), EntropySignal()])
def test_higher_value_means_more_uncertain(signal):
    sure = [TokenStep(token_id=0, text="x", logprob=math.log(0.99), entropy=0.05)] * 3
    unsure = [TokenStep(token_id=0, text="x", logprob=math.log(0.3), entropy=3.0)] * 3
    assert signal.evaluate(unsure).value > signal.evaluate(sure).value


def test_gate_reasons_carry_value_threshold_and_span():
    gate = Gate(GateConfig(rules=[TokenRAGRule(threshold=0.1), FlareRule(act=False), GNLLRule()]))
    bundle = gate.evaluate(toks(0.99, 0.5, 0.99))
    values, reasons = bundle.values, bundle.asking("retrieve")
    assert [r.signal for r in reasons] == ["token_rag"]  # flare fired but does not act
    flare = next(v for v in values if v.name == "flare")
    assert flare.fired and not flare.acting and values[0].acting
    r = reasons[0]
    assert r.value == pytest.approx(values[0].value) and r.threshold == 0.1
    assert r.span is not None and r.span.start == 1 and r.span.end == 2
    assert gate.query_mask(toks(0.99, 0.5, 0.99), reasons) == {1}


def test_gate_combine_all_and_accept():
    gate = Gate(GateConfig(rules=[TokenRAGRule(threshold=0.1), EntropyRule(threshold=5.0)], combine="all"))
    assert gate.evaluate(toks(0.5, 0.5)).asking("retrieve", "all") == ()  # entropy did not fire
    assert gate.evaluate(toks(0.5, 0.5)).asking("retrieve", "any")
    assert Gate(GateConfig(rules=[TokenRAGRule(threshold=0.1)])).evaluate(toks(0.99, 0.99)).asking("retrieve") == ()


def test_empty_sentence_never_fires():
    for s in (FlareSignal(), TokenRAGSignal(), GNLLSignal(threshold=0.0), EntropySignal(threshold=0.0)):
        assert not s.evaluate([]).fired
