"""Knowledge control inside the decode session: a no-context twin row in the same batch."""

from __future__ import annotations

from gatedrag.config import KnowledgeControlConfig as K
from gatedrag.control.joint import generate_with_control
from gatedrag.lm.base import Twin

CTX = "Background: Paris is in France.\nQ: Where is Paris?\nA:"
PAR = "Q: Where is Paris?\nA:"
OTHER = "Q: Who wrote Hamlet?\nA:"


def run(lm, rows, budget=8):
    """rows: {key: (prompt, parametric or None, config, mix)} -> {key: (token ids, token steps)}"""
    session = lm.open_session()
    for key, (prompt, par, cfg, mix) in rows.items():
        session.start(key, prompt, twin=Twin(prompt=par, control=cfg or K(), mix=mix) if par is not None else None)
    steps: dict = {k: [] for k in rows}

    def hook(key, sentence):
        steps[key] += sentence.tokens
        return "continue"

    out = session.decode(list(rows), on_sentence=hook, budgets=dict.fromkeys(rows, budget), max_sentence_tokens=4)
    return {k: ([t.token_id for t in steps[k]], steps[k], out[k]) for k in rows}


def test_measuring_twin_leaves_the_tokens_alone_and_records_confidence_gain(tiny_lm):
    plain = run(tiny_lm, {"a": (CTX, None, None, False)})["a"]
    measured = run(tiny_lm, {"a": (CTX, PAR, K(), False)})["a"]
    assert measured[0] == plain[0]
    assert all(s.confidence_gain is not None and s.conflict is not None for s in measured[1])
    assert all(s.confidence_gain is None for s in plain[1])
    for a, b in zip(plain[1], measured[1]):  # the monitor's statistics are those of the context row
        assert abs(a.logprob - b.logprob) < 1e-4 and abs(a.entropy - b.entropy) < 1e-4
    assert measured[2].prompt_tokens > plain[2].prompt_tokens  # the twin's prompt is counted


def test_mixing_twin_matches_the_joint_decoder_and_spares_other_rows(tiny_lm):
    cfg = K(alpha=0.9, epsilon=1.0)
    out = run(tiny_lm, {"a": (CTX, PAR, cfg, True), "b": (OTHER, None, None, False)})
    ref = generate_with_control(tiny_lm.model, tiny_lm.tokenizer, [CTX], [PAR], cfg, max_new_tokens=8)
    n = len(out["a"][0])
    assert out["a"][0] == ref.token_ids[0][:n]
    assert all(abs(s.confidence_gain - g) < 1e-4 for s, g in zip(out["a"][1], ref.confidence_gain[0]))
    alone = run(tiny_lm, {"b": (OTHER, None, None, False)})["b"]
    assert out["b"][0] == alone[0]  # an uncontrolled row in the same batch is untouched
    half = run(tiny_lm, {"a": (CTX, PAR, K(alpha=0.5, epsilon=1.0), True)})["a"]
    plain = run(tiny_lm, {"a": (CTX, None, None, False)})["a"]
    assert half[0] == plain[0]  # alpha 0.5 is the no-op point


def test_twin_keeps_its_cache_across_decode_calls(tiny_lm):
    cfg = K(alpha=0.9, epsilon=1.0)
    session = tiny_lm.open_session()
    session.start("a", CTX, twin=Twin(prompt=PAR, control=cfg, mix=True))
    got: list[int] = []

    def hook(key, sentence):
        got.extend(t.token_id for t in sentence.tokens)
        return "continue"

    for _ in range(2):
        session.decode(["a"], on_sentence=hook, budgets={"a": 4}, max_sentence_tokens=4)
    ref = generate_with_control(tiny_lm.model, tiny_lm.tokenizer, [CTX], [PAR], cfg, max_new_tokens=8)
    assert got == ref.token_ids[0][: len(got)] and len(got) == 8
