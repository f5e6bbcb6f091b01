"""CK-PLUG control: the formulas on hand-built logits, the no-op and off settings, the
transformers processor, and batched == one-question-at-a-time for both implementations."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessorList

from gatedrag.config import KnowledgeControlConfig as K
from gatedrag.control.joint import generate_with_control
from gatedrag.control.knowledge import knowledge_mix, plausibility_head
from gatedrag.control.processor import KnowledgeRelianceLogitsProcessor
from gatedrag.errors import InputError


def test_plausibility_head_is_the_union_of_both_cutoffs():
    lp_c = torch.log_softmax(torch.tensor([[5.0, 4.0, 0.0, -3.0, -9.0]]), -1)
    lp_p = torch.log_softmax(torch.tensor([[-9.0, 0.0, 0.0, 6.0, -9.0]]), -1)
    # select_top=2: each keeps its top 2 (cutoff = min(max + ln .01, 2nd largest)); relative_top lets
    # token 2 of z_c in? 5 + ln .01 = 0.395 > 0 so no; union = {0, 1} | {3, 1 or 2}
    head = plausibility_head(lp_c, lp_p, select_top=2, relative_top=0.01)
    assert head[0].tolist() == [True, True, True, True, False]
    wide = plausibility_head(lp_c, lp_p, select_top=1, relative_top=1e-6)  # only the relative cut
    assert wide[0, 2] and not wide[0, 4]


def test_confidence_gain_conflict_and_manual_mix_by_hand():
    z_c = torch.tensor([[1.0, 1.0, -50.0]])  # with context: a coin flip, H_c = ln 2
    z_p = torch.tensor([[0.0, 8.0, -50.0]])  # without: almost sure of token 1
    scores, s = knowledge_mix(z_c, z_p, K(alpha=0.8, select_top=2))
    p = torch.softmax(torch.tensor([0.0, 8.0]), -1)
    h_p = float(-(p * torch.log(p + 1e-9)).sum())
    assert float(s.h_context[0]) == pytest.approx(math.log(2), abs=1e-6)
    assert float(s.h_parametric[0]) == pytest.approx(h_p, abs=1e-6)
    assert float(s.confidence_gain[0]) == pytest.approx(h_p - math.log(2), abs=1e-6) and bool(s.adjusted[0])
    lp_c, lp_p = torch.log_softmax(z_c, -1), torch.log_softmax(z_p, -1)
    expected = 0.8 * lp_p + 0.2 * (lp_c - lp_p)
    assert torch.allclose(scores[0, :2], expected[0, :2], atol=1e-5)
    assert scores[0, 2] < -1e30  # outside the head
    # no conflict when the context makes the model surer: plain RAG logits come back
    scores, s = knowledge_mix(z_p, z_c, K(alpha=0.8, select_top=2))
    assert not bool(s.adjusted[0]) and torch.allclose(scores, torch.log_softmax(z_p, -1))


def test_epsilon_margin_paper_vs_code():
    z_c = torch.tensor([[2.0, 1.0, 0.0, -40.0]])
    z_p = torch.tensor([[2.2, 1.0, 0.0, -40.0]])  # slightly surer without context: CG < 0 but CG < H_c too
    z_p2 = torch.tensor([[1.6, 1.0, 0.0, -40.0]])  # slightly less sure: 0 < CG < H_c
    assert bool(knowledge_mix(z_c, z_p, K(epsilon=0))[1].adjusted[0])
    assert not bool(knowledge_mix(z_c, z_p2, K(epsilon=0))[1].adjusted[0])  # paper: CG >= 0, no conflict
    assert bool(knowledge_mix(z_c, z_p2, K(epsilon=1))[1].adjusted[0])  # code: CG < H_c, conflict


def test_adaptive_weights_by_hand():
    z_c = torch.tensor([[1.0, 0.5, -60.0]])
    z_p = torch.tensor([[0.0, 3.0, -60.0]])
    scores, s = knowledge_mix(z_c, z_p, K(adaptive=True, epsilon=1.0, select_top=2))
    h_c, h_p = float(s.h_context[0]), float(s.h_parametric[0])
    r = 1 + abs(h_c - h_p) / (h_c + h_p)
    d = h_c + r * h_p
    lp_c, lp_p = torch.log_softmax(z_c, -1), torch.log_softmax(z_p, -1)
    expected = (2 * h_c / d) * lp_p + (2 * h_p / d) * (lp_c - lp_p)
    assert bool(s.adjusted[0]) and torch.allclose(scores[0, :2], expected[0, :2], atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(12, 200))
def test_alpha_half_is_a_no_op_and_negative_epsilon_adjusts_nothing(seed, vocab):
    g = torch.Generator().manual_seed(seed)
    z_c, z_p = torch.randn(4, vocab, generator=g) * 3, torch.randn(4, vocab, generator=g) * 3
    scores, _ = knowledge_mix(z_c, z_p, K(alpha=0.5, epsilon=1.0))
    assert torch.equal(scores.argmax(-1), z_c.argmax(-1))
    scores, s = knowledge_mix(z_c, z_p, K(alpha=0.0, epsilon=-1e9))
    assert not bool(s.adjusted.any()) and torch.allclose(scores, torch.log_softmax(z_c, -1))


def test_settings_are_validated():
    from pydantic import ValidationError

    from gatedrag.errors import ConfigError  # noqa: F401  (the config layer turns these into ConfigError)

    for bad in ({"alpha": 1.5}, {"select_top": 0}, {"relative_top": 0.0}):
        with pytest.raises(ValidationError):
            K(**bad)


# -- on a real (tiny) model --------------------------------------------------------------------------
def _enc(tok, texts):
    tok.padding_side = "left"
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


CTX = ["Background: Paris is in France.\nQ: Where is Paris?\nA:", "Background: x.\nQ: Who?\nA:"]
PAR = ["Q: Where is Paris?\nA:", "Q: Who?\nA:"]


def _generate(lm, ctx, par, config):
    model, tok = lm.model, lm.tokenizer
    c, p = _enc(tok, ctx), _enc(tok, par)
    procs = []
    if config is not None:
        procs.append(KnowledgeRelianceLogitsProcessor(model, p.input_ids, p.attention_mask, config))
    out = model.generate(
        **c,
        logits_processor=LogitsProcessorList(procs),
        do_sample=False,
        max_new_tokens=8,
        pad_token_id=tok.pad_token_id,
    )
    return out[:, c.input_ids.shape[1] :].tolist(), procs


def test_processor_no_op_settings_equal_plain_rag(tiny_lm):
    plain, _ = _generate(tiny_lm, CTX, PAR, None)
    half, (ck,) = _generate(tiny_lm, CTX, PAR, K(alpha=0.5, epsilon=1.0))
    off, (ck_off,) = _generate(tiny_lm, CTX, PAR, K(alpha=0.0, epsilon=-1e9))
    assert half == plain and off == plain
    assert len(ck.history) >= 1 and not any(bool(h.adjusted.any()) for h in ck_off.history)


def test_processor_batched_equals_one_at_a_time(tiny_lm):
    cfg = K(alpha=0.9, epsilon=1.0)
    both, (ck,) = _generate(tiny_lm, CTX, PAR, cfg)
    assert any(bool(h.adjusted.any()) for h in ck.history)  # the control really acted
    plain, _ = _generate(tiny_lm, CTX, PAR, None)
    assert both != plain  # ...and changed the output
    for i in range(2):
        single, (one,) = _generate(tiny_lm, CTX[i : i + 1], PAR[i : i + 1], cfg)
        n = len(single[0])
        assert both[i][:n] == single[0]
        for step_b, step_1 in zip(ck.history[:n], one.history):
            assert float(step_b.confidence_gain[i]) == pytest.approx(float(step_1.confidence_gain[0]), abs=1e-4)


def test_joint_generation_matches_the_processor_and_is_batch_invariant(tiny_lm):
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    cfg = K(alpha=0.9, epsilon=1.0)
    via_processor, _ = _generate(tiny_lm, CTX, PAR, cfg)
    joint = generate_with_control(model, tok, CTX, PAR, cfg, max_new_tokens=8, eos_ids=[tok.eos_token_id])
    for i in range(2):
        assert joint.token_ids[i] == via_processor[i][: len(joint.token_ids[i])]
        single = generate_with_control(model, tok, CTX[i : i + 1], PAR[i : i + 1], cfg, max_new_tokens=8)
        assert single.token_ids[0] == joint.token_ids[i]
        assert single.confidence_gain[0] == pytest.approx(joint.confidence_gain[i], abs=1e-4)
    plain = generate_with_control(model, tok, CTX, PAR, cfg, max_new_tokens=8, control=False)
    half = generate_with_control(model, tok, CTX, PAR, K(alpha=0.5, epsilon=1.0), max_new_tokens=8)
    assert half.token_ids == plain.token_ids and not any(any(a) for a in plain.adjusted)


def test_bad_inputs(tiny_lm):
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    with pytest.raises(InputError):
        generate_with_control(model, tok, "one string", PAR)
    with pytest.raises(InputError):
        generate_with_control(model, tok, CTX, PAR[:1])
    with pytest.raises(InputError):
        KnowledgeRelianceLogitsProcessor(model, torch.zeros((1, 0), dtype=torch.long))
    with pytest.raises(InputError, match="left-padded"):
        KnowledgeRelianceLogitsProcessor(
            model, torch.ones((2, 3), dtype=torch.long), torch.tensor([[1, 1, 0], [1, 1, 1]])
        )


def test_confidence_gain_signal_from_a_controlled_decode(tiny_lm):
    from gatedrag.signals.gain import ConfidenceGainSignal
    from gatedrag.types import TokenStep

    model, tok = tiny_lm.model, tiny_lm.tokenizer
    out = generate_with_control(model, tok, CTX[:1], PAR[:1], K(alpha=0.9, epsilon=1.0), max_new_tokens=6)
    steps = [
        TokenStep(token_id=t, text=tok.decode([t]), logprob=-0.5, entropy=1.0, confidence_gain=g, conflict=a)
        for t, g, a in zip(out.token_ids[0], out.confidence_gain[0], out.adjusted[0])
    ]
    v = ConfidenceGainSignal(threshold=0.0).evaluate(steps)
    assert v.value == pytest.approx(out.adjusted_fraction[0])
    assert v.details["mean_confidence_gain"] == pytest.approx(out.mean_confidence_gain[0], abs=1e-5)
    assert v.fired == (v.value > 0)
    plain = ConfidenceGainSignal().evaluate([s.model_copy(update={"confidence_gain": None}) for s in steps])
    assert not plain.fired and plain.note
