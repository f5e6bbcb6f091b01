"""The HF backend on a tiny randomly initialised model: batching, caches, statistics, stopping."""

import math

import pytest
import torch

from gatedrag.errors import ContextLengthError, InputError

PROMPTS = ["Question: what is it?\nAnswer:", "Q: x\nA:", "A longer prompt. With two sentences.\nAnswer:"]


def reference(lm, prompt_ids, n):
    out = lm.model.generate(
        torch.tensor([prompt_ids]),
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=lm.pad_id,
        eos_token_id=sorted(lm.eos_ids),
        output_scores=True,
        return_dict_in_generate=True,
    )
    return out


def test_batched_rows_equal_one_at_a_time_generate(tiny_lm):
    s = tiny_lm.open_session()
    for i, p in enumerate(PROMPTS):
        s.start(i, p, cached_prefix=p[:6] if i == 2 else "")
    out = s.decode([0, 1, 2], on_sentence=lambda k, sent: "continue", budgets={0: 12, 1: 20, 2: 30}, regroup=False)
    for i, p in enumerate(PROMPTS):
        plen = len(tiny_lm.encode(p, special=True))
        ids = s.tokens(i)
        ref = reference(tiny_lm, ids[:plen], out[i].new_tokens)
        assert ref.sequences[0, plen:].tolist() == ids[plen:]


def test_token_statistics_match_transition_scores(tiny_lm):
    s = tiny_lm.open_session()
    s.start("a", PROMPTS[0])
    seen = []
    out = s.decode(
        ["a"],
        on_sentence=lambda k, sent: seen.extend(sent.tokens) or "continue",
        budgets={"a": 15},
        max_sentence_tokens=5,
        regroup=False,
    )
    plen = len(tiny_lm.encode(PROMPTS[0], special=True))
    ref = reference(tiny_lm, s.tokens("a")[:plen], out["a"].new_tokens)
    lp = tiny_lm.model.compute_transition_scores(ref.sequences, ref.scores, normalize_logits=True)[0]
    assert len(seen) == out["a"].new_tokens - (1 if s.tokens("a")[-1] in tiny_lm.eos_ids else 0)
    for j, t in enumerate(seen):
        assert t.logprob == pytest.approx(float(lp[j]), abs=1e-4)
        p = torch.softmax(ref.scores[j][0].float(), -1)
        assert t.entropy == pytest.approx(float(torch.special.entr(p).sum()), abs=1e-3)
        assert t.top[0].logprob >= t.logprob - 1e-6 and len(t.top) == 3


def test_continuing_a_row_reuses_its_cache(tiny_lm):
    s = tiny_lm.open_session()
    s.start(0, PROMPTS[2])
    s.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 8}, regroup=False)
    s.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 8}, regroup=False)
    ids = s.tokens(0)
    plen = len(tiny_lm.encode(PROMPTS[2], special=True))
    if tiny_lm.pad_id not in ids[plen:]:
        assert reference(tiny_lm, ids[:plen], len(ids) - plen).sequences[0, plen:].tolist() == ids[plen:]
    assert s.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 1})[0].prompt_tokens == 0


def test_hook_stop_pauses_the_others_at_a_boundary(tiny_lm):
    s = tiny_lm.open_session()
    for i, p in enumerate(PROMPTS):
        s.start(i, p)
    calls = []

    def hook(key, sentence):
        calls.append(key)
        return "act" if key == 0 else "continue"  # row 0 stops at its first sentence

    out = s.decode([0, 1, 2], on_sentence=hook, budgets={0: 60, 1: 60, 2: 60}, max_sentence_tokens=6)
    assert out[0].finish == "act" and len(out[0].sentences) == 1
    assert {out[1].finish, out[2].finish} <= {"paused", "eos", "budget", "stop"}
    for o in out.values():
        assert all(len(sent.tokens) <= 6 for sent in o.sentences)


def test_stop_strings_end_the_row_and_are_not_in_the_text(tiny_lm):
    s = tiny_lm.open_session()
    s.start(0, PROMPTS[0])
    text = tiny_lm.decode(s.tokens(0))
    out = s.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 40}, stop_strings=("e",), regroup=False)
    gen = tiny_lm.decode(s.tokens(0))[len(text) :]
    if "e" in gen:
        assert out[0].finish == "stop"
        assert all("e" not in sent.text for sent in out[0].sentences)


def test_bad_input_is_refused(tiny_lm):
    s = tiny_lm.open_session()
    with pytest.raises(InputError):
        s.start(0, "   ")
    with pytest.raises(ContextLengthError, match="context"):
        s.start(0, "x" * 5000)
    with pytest.raises(InputError, match="prefix"):
        s.start(0, "abc", cached_prefix="zzz")
    with pytest.raises(InputError, match="unknown rows"):
        s.decode([42], on_sentence=lambda k, x: "continue", budgets={42: 1})
    assert math.isfinite(tiny_lm.count_tokens("hello"))


def test_budget_is_clamped_to_the_context_and_a_failing_hook_leaves_rows_intact(tiny_lm):
    s = tiny_lm.open_session()
    room = tiny_lm.context_length - s.start(0, "x" * (tiny_lm.context_length - 6))
    assert room == 6
    out = s.decode([0], on_sentence=lambda k, x: "continue", budgets={0: 100}, regroup=False)
    assert len(s.tokens(0)) <= tiny_lm.context_length
    if out[0].finish == "budget":  # no EOS: it wrote exactly the room that was left, not 100 tokens
        assert out[0].new_tokens == room and len(s.tokens(0)) == tiny_lm.context_length
        again = s.decode([0], on_sentence=lambda k, x: "continue", budgets={0: 10})[0]
        assert again.finish == "budget" and again.new_tokens == 0

    s.start(1, PROMPTS[0])
    before = (s.tokens(1), list(s.rows[1].stream.steps))

    def boom(key, sentence):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        s.decode([1], on_sentence=boom, budgets={1: 60}, max_sentence_tokens=3)
    assert s.tokens(1) == before[0] and s.rows[1].stream.steps == before[1]


def _sampled(lm, seed, temperature=1.5):
    from gatedrag.lm.sampling import Sampling

    s = lm.open_session()
    for i, p in enumerate(PROMPTS[:2]):
        s.start(i, p)
    out = s.decode(
        [0, 1],
        on_sentence=lambda k, sent: "continue",
        budgets={0: 12, 1: 12},
        regroup=False,
        sampling=Sampling(temperature=temperature, top_p=1.0, seed=seed),
    )
    return s, out


def test_sampled_decoding_is_repeatable_and_keeps_the_models_statistics(tiny_lm):
    _, out = _sampled(tiny_lm, seed=1)
    _, again = _sampled(tiny_lm, seed=1)
    _, other = _sampled(tiny_lm, seed=2)
    ids = [[t.token_id for x in out[k].sentences for t in x.tokens] for k in (0, 1)]
    assert ids == [[t.token_id for x in again[k].sentences for t in x.tokens] for k in (0, 1)]
    assert ids != [[t.token_id for x in other[k].sentences for t in x.tokens] for k in (0, 1)]
    greedy = tiny_lm.open_session()
    greedy.start(0, PROMPTS[0])
    g = greedy.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 12}, regroup=False)
    assert [t.token_id for x in g[0].sentences for t in x.tokens] != ids[0]  # a random model is far from peaked
    # each sampled token's log-probability is the model's own (untempered) one
    tokens = [t for x in out[0].sentences for t in x.tokens]
    text = "".join(t.text for t in tokens)
    scored = tiny_lm.score([PROMPTS[0]], [text])[0]
    assert [t.token_id for t in scored] == [t.token_id for t in tokens]
    for a, b in zip(scored, tokens):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4) and a.entropy == pytest.approx(b.entropy, abs=1e-3)
