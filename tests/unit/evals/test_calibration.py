"""AUROC, PRR and ECE by hand and by property; every signal's sign convention."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatedrag.evals.calibration import auroc, ece, prr, reliability
from gatedrag.signals import EntropySignal, FlareSignal, GNLLSignal, TokenRAGSignal
from gatedrag.types import TokenStep


def test_auroc_by_hand():
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    # wrong: {0.5, 0.2}, right: {0.3, 0.2}: pairs (0.5>0.3) 1, (0.5>0.2) 1, (0.2<0.3) 0, (0.2=0.2) 1/2 -> 2.5/4
    assert auroc([0.5, 0.2, 0.3, 0.2], [True, True, False, False]) == pytest.approx(0.625)
    assert auroc([0.3, 0.4], [True, True]) is None


def test_prr_by_hand():
    assert prr([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert prr([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == pytest.approx(-1.0)
    assert prr([0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1]) == pytest.approx(0.0)
    assert prr([0.3, 0.4], [1, 1]) is None


def test_ece_and_reliability_by_hand():
    # bin [0.9, 1.0): conf 0.9, acc 0.5; bin [0.1, 0.2): conf 0.1, acc 0 -> 0.5*0.4 + 0.5*0.1 = 0.25
    assert ece([0.9, 0.9, 0.1, 0.1], [True, False, False, False]) == pytest.approx(0.25)
    bins = reliability([0.95, 1.0, 0.0], [True, True, False])
    assert [(b.count, b.accuracy) for b in bins] == [(1, 0.0), (2, 1.0)]
    assert ece([], []) is None


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=2, max_size=40))
def test_auroc_is_antisymmetric(pairs):
    u = [p[0] for p in pairs]
    y = [p[1] for p in pairs]
    a, b = auroc(u, y), auroc([-x for x in u], y)
    if a is None:
        assert b is None
    else:
        assert 0.0 <= a <= 1.0 and a + b == pytest.approx(1.0)


def _tokens(probs, entropy):
    return [TokenStep(token_id=i, text=f" w{i}", logprob=math.log(p), entropy=entropy) for i, p in enumerate(probs)]


@pytest.mark.parametrize(
    "signal", [FlareSignal(), TokenRAGSignal(), GNLLSignal(), GNLLSignal(normalize=True), EntropySignal()]
)
def test_every_signal_is_higher_when_the_model_is_less_sure(signal):
    sure = signal.evaluate(_tokens([0.99, 0.95, 0.97], entropy=0.1))
    unsure = signal.evaluate(_tokens([0.6, 0.3, 0.5], entropy=2.5))
    assert unsure.value > sure.value
    assert auroc([sure.value, unsure.value], [False, True]) == 1.0  # wrong answers score higher
