"""The llama.cpp backend on the real packaged GGUFs (skipped where llama-cpp-python is not installed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from gatedrag.config import LlamaCppConfig, ModelConfig, PipelineConfig
from gatedrag.errors import ConfigError, ModelError, ModelIntegrityError, ModelNotInstalledError

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (pip install 'gatedrag[llamacpp]')",
    ),
]

PROMPTS = ["The capital of France is", "Question: Who wrote Hamlet?\nAnswer:", "The largest planet is"]


def _load(name: str = "gemma-3-270m", **settings):
    from gatedrag.lm.llamacpp import LlamaCppLanguageModel

    config = ModelConfig(name=name, backend="llamacpp", llamacpp=LlamaCppConfig(**settings))
    try:
        return LlamaCppLanguageModel.load(config)
    except ModelNotInstalledError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def lm():
    return _load()


def _go(key, sentence):
    return "continue"


def _decode(lm, prompts, budget=12, **kw):
    s = lm.open_session()
    for i, p in enumerate(prompts):
        s.start(i, p)
    return s, s.decode(
        list(range(len(prompts))), on_sentence=_go, budgets=dict.fromkeys(range(len(prompts)), budget), **kw
    )


def _ids(outcome):
    return [t.token_id for s in outcome.sentences for t in s.tokens]


def test_token_statistics_are_a_softmax_of_the_scores(lm):
    """A generated token's statistics equal those of the next-token distribution after its prompt,
    and both are a proper distribution (top-k sorted, probabilities summing below 1)."""
    _, out = _decode(lm, PROMPTS[:1], budget=4)
    first = out[0].sentences[0].tokens[0]
    after = lm.next_token(PROMPTS[:1])[0]
    assert first.entropy == pytest.approx(after.entropy, abs=1e-6)
    assert [a.token_id for a in first.top] == [a.token_id for a in after.top]
    assert first.token_id == first.top[0].token_id and first.logprob == pytest.approx(first.top[0].logprob)
    lps = [a.logprob for a in first.top]
    assert lps == sorted(lps, reverse=True) and sum(np.exp(lps)) <= 1 + 1e-6
    scored = lm.score(PROMPTS[:1], [first.text])[0][0]
    assert scored.token_id == first.token_id and scored.logprob == pytest.approx(first.logprob, abs=1e-6)


def test_token_stats_match_torch_log_softmax():
    import torch

    from gatedrag.lm.llamacpp import token_stats

    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(5000) * 4).astype(np.float32)
    lp, entropy, top = token_stats(logits, 17, 5)
    ref = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1)
    assert lp == pytest.approx(float(ref[17]), abs=1e-9)
    assert entropy == pytest.approx(float(-(ref.exp() * ref).sum()), abs=1e-9)
    values, ids = ref.topk(5)
    assert [t for t, _ in top] == ids.tolist() and [p for _, p in top] == pytest.approx(values.tolist(), abs=1e-9)


def test_sentences_stop_strings_and_budgets(lm):
    sentences = []
    s = lm.open_session()
    s.start(0, "Question: Who wrote Hamlet?\nAnswer:")
    out = s.decode(
        [0], on_sentence=lambda k, sent: sentences.append(sent) or "continue", budgets={0: 40}, stop_strings=["\n"]
    )
    assert out[0].finish == "stop" and sentences and "\n" not in sentences[-1].text and sentences[-1].final
    assert out[0].new_tokens <= 40
    _, out = _decode(lm, PROMPTS[:1], budget=5)
    assert out[0].finish == "budget" and out[0].new_tokens == 5 and len(_ids(out[0])) == 5


def test_cache_reuse_gives_the_tokens_of_a_fresh_prompt(lm):
    """Decoding 8 + 8 tokens from the row's cache gives the 16 tokens decoded at once; a new row
    whose prompt shares a prefix with a cached row gives the tokens a fresh model gives."""
    _, whole = _decode(lm, PROMPTS[:1], budget=16)
    s, first = _decode(lm, PROMPTS[:1], budget=8)
    second = s.decode([0], on_sentence=_go, budgets={0: 8})
    assert second[0].prompt_tokens == 1  # only the last generated token was read again
    assert _ids(first[0]) + _ids(second[0]) == _ids(whole[0])

    prefix = "Answer in one sentence.\nQuestion: What is the capital of Italy?\nAnswer: Rome.\n"
    other = prefix + "Question: What is the capital of Spain?\nAnswer:"
    _decode(lm, [prefix + "Question: What is the capital of France?\nAnswer:"], budget=2)  # caches the prefix
    _, shared = _decode(lm, [other], budget=12)
    assert shared[0].prompt_tokens < lm.count_tokens(other)  # the prefix was copied, not read again
    fresh = _load()  # nothing cached
    _, alone = _decode(fresh, [other], budget=12)
    assert _ids(shared[0]) == _ids(alone[0])


def test_a_restart_on_prompt_plus_answer_reads_the_answer_again(lm):
    """A restart re-reads the answer so far in one batch, which llama.cpp computes with other
    kernels than token-by-token decoding: the distributions agree to a few hundredths of a nat
    (greedy choices between near-ties may part later; see BENCHMARKS.md)."""
    s, first = _decode(lm, PROMPTS[:1], budget=8)
    cont = s.decode([0], on_sentence=_go, budgets={0: 1})[0].sentences[0].tokens[0]
    fresh = _load()
    s2 = fresh.open_session()
    s2.start(0, PROMPTS[0], continuation=first[0].sentences)
    again = s2.decode([0], on_sentence=_go, budgets={0: 1})[0]
    assert again.prompt_tokens == lm.count_tokens(PROMPTS[0]) + 1 + 8  # <bos>, prompt and answer read
    step = again.sentences[0].tokens[0]
    assert step.token_id == cont.token_id and step.logprob == pytest.approx(cont.logprob, abs=0.1)


def test_a_new_row_reuses_the_prefix_another_row_holds(lm):
    prefix = "Answer the question in one sentence.\nQuestion: What is the capital of Italy?\nAnswer: Rome.\n"
    s = lm.open_session()
    s.start("a", prefix + "Question: What is the capital of France?\nAnswer:", cached_prefix=prefix)
    a = s.decode(["a"], on_sentence=_go, budgets={"a": 4})["a"]
    s.start("b", prefix + "Question: What is the capital of Spain?\nAnswer:", cached_prefix=prefix)
    b = s.decode(["b"], on_sentence=_go, budgets={"b": 4})["b"]
    n_prefix = lm.count_tokens(prefix)
    assert b.prompt_tokens < a.prompt_tokens - n_prefix // 2  # the shared prefix was not read again
    s.close("a")
    s.close("b")


def test_rows_decoded_together_match_rows_alone_one_at_a_time():
    """With batch_rows off, each row is decoded alone: its tokens do not depend on the others."""
    lm = _load(batch_rows=False)
    _, together = _decode(lm, PROMPTS, budget=10)
    for i, p in enumerate(PROMPTS):
        _, alone = _decode(lm, [p], budget=10)
        assert _ids(alone[0]) == _ids(together[i])


def test_batched_rows_are_decoded_and_cut():
    """With batch_rows on, the rows advance together (one llama.cpp call a step) to the same budget
    and sentence cuts as alone; batched kernels may round differently, so only the first token of
    each row (read from the same prompt) must be the same."""
    lm = _load(batch_rows=True)
    _, out = _decode(lm, PROMPTS, budget=10)
    assert all(o.new_tokens == 10 and o.sentences for o in out.values())
    for i, p in enumerate(PROMPTS):
        _, alone = _decode(lm, [p], budget=1)
        assert _ids(alone[0]) == _ids(out[i])[:1]


def test_a_full_cache_evicts_idle_rows_and_rows_that_do_not_fit_together_take_turns():
    from gatedrag.errors import ContextLengthError

    lm = _load(cells=256, sequences=2)
    s = lm.open_session()
    long = "word " * 150
    first = {}
    for key in ("x", "y"):
        s.start(key, key + " " + long)  # no common prefix: nothing shared
        first[key] = s.decode([key], on_sentence=_go, budgets={key: 4})[key]  # y evicts x
        assert first[key].new_tokens == 4
    with pytest.raises(ContextLengthError):
        s.start("z", "word " * 400)
    both = s.decode(["x", "y"], on_sentence=_go, budgets={"x": 4, "y": 4})  # 2 x 150 > 256 cells
    assert all(o.new_tokens == 4 for o in both.values())
    assert both["x"].prompt_tokens > 100  # x's cache was evicted: it read its prompt again
    alone = _load(cells=256, sequences=2)
    for key in ("x", "y"):  # the same tokens as each row decoded alone, from scratch
        s2 = alone.open_session()
        s2.start(key, key + " " + long)
        out = s2.decode([key], on_sentence=_go, budgets={key: 8})[key]
        assert _ids(out)[:4] == _ids(first[key])


def test_scores_longer_than_a_batch(lm):
    text = " and".join(["the cat sat on the mat"] * 40)
    lm2 = _load(n_batch=20)
    steps = lm2.score(["Once"], [text])[0]
    ref = lm.score(["Once"], [text])[0]
    assert len(steps) == len(ref) > 16 and [s.token_id for s in steps] == [s.token_id for s in ref]
    diffs = [abs(a.logprob - b.logprob) for a, b in zip(steps, ref)]  # other chunks, other kernels
    assert max(diffs) < 0.5 and sum(diffs) / len(diffs) < 0.05  # a misaligned chunk would be off by nats


def test_missing_or_corrupt_gguf(tmp_path, monkeypatch):
    from gatedrag.lm import packaged
    from gatedrag.lm.llamacpp import LlamaCppLanguageModel

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ModelIntegrityError, match="not a GGUF"):
        LlamaCppLanguageModel.load(ModelConfig(name=str(bad), backend="llamacpp"))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\0\0\0" + b"\0" * 64)
    with pytest.raises(ModelIntegrityError, match="could not load"):
        LlamaCppLanguageModel.load(ModelConfig(name=str(truncated), backend="llamacpp"))
    with pytest.raises(ModelError, match="unknown model"):
        LlamaCppLanguageModel.load(ModelConfig(name=str(tmp_path / "missing.gguf"), backend="llamacpp"))
    spec = packaged.PACKAGED_MODELS["gemma-3-270m"]
    ghost = packaged.PackagedModel(
        name="ghost",
        gguf_name="ghost.gguf",
        size=1,
        sha256="0" * 64,
        parts=(packaged.ModelPart("ghost-part1", "ghost_part1_not_installed", "data/x"),),
        licence="-",
    )
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "ghost", ghost)
    with pytest.raises(ModelNotInstalledError, match="pip install ghost-part1"):
        LlamaCppLanguageModel.load(ModelConfig(name="ghost", backend="llamacpp", cache_dir=tmp_path))
    assert spec.name == "gemma-3-270m"


def test_signals_it_cannot_serve_are_refused_naming_the_backend_that_can(lm):
    from gatedrag.factory import resolve_backend
    from gatedrag.pipeline import GatedRAG

    rind = {"gate": {"rules": [{"signal": "rind"}]}}
    cfg = PipelineConfig.model_validate({"model": {"backend": "llamacpp"}, **rind})
    with pytest.raises(ConfigError, match="backend: hf"):
        resolve_backend(cfg)
    with pytest.raises(ConfigError, match=r"attention.*backend: hf"):
        GatedRAG(lm, None, PipelineConfig.model_validate(rind))
    ck = PipelineConfig.model_validate({"gate": {"rules": [{"signal": "confidence_gain"}]}})
    with pytest.raises(ConfigError, match="twin"):
        GatedRAG(lm, None, ck)
    traced = PipelineConfig.model_validate(
        {"gate": {"rules": [{"signal": "rind", "act": False}, {"signal": "token_rag"}]}}
    )
    GatedRAG(lm, None, traced)  # a traced-only signal it cannot serve is allowed (its trace says so)


def test_pipeline_end_to_end_on_the_default_model(tmp_path):
    """The whole pipeline on llama.cpp with the real default model and the demo corpus."""
    from gatedrag.factory import build_components, build_rag

    config = PipelineConfig.model_validate({"model": {"backend": "llamacpp"}})
    try:
        rag = build_rag(config, build_components(config))
    except ModelNotInstalledError as err:
        pytest.skip(str(err))
    assert rag.lm.capabilities.kv_cache and not rag.lm.capabilities.attention
    answer = rag.ask(
        'What screenwriter with credits for "Evolution" co-wrote a film starring Nicolas Cage and Téa Leoni?'
    )
    assert answer.finish_reason == "answer" and answer.text and not answer.degraded
    assert answer.counts.generated_tokens > 0 and answer.counts.llm_calls >= 1
    sentences = [s for s in answer.steps if s.kind == "sentence"]
    assert sentences and all(v.value is not None for v in sentences[0].signals if v.name in ("token_rag", "entropy"))
    if answer.counts.retrievals:
        assert any(s.kind == "retrieval" and s.passages for s in answer.steps)


def test_sampled_decoding_is_repeatable_and_keeps_the_models_statistics(lm):
    from gatedrag.lm.sampling import Sampling

    def run(seed):
        # from the same (empty) cache: llama.cpp's scores of a prompt depend on how its tokens were
        # batched, so a prompt whose prefix another test left cached reads differently (by up to
        # ~0.5 logits, see the module doc) and a draw near a tie can move
        lm.clear_cache()
        return _decode(lm, PROMPTS[:2], budget=10, sampling=Sampling(temperature=1.2, top_p=1.0, seed=seed))[1]

    a, b, c = run(1), run(1), run(2)
    assert [_ids(a[k]) for k in (0, 1)] == [_ids(b[k]) for k in (0, 1)]
    assert [_ids(a[k]) for k in (0, 1)] != [_ids(c[k]) for k in (0, 1)]
    first = a[0].sentences[0].tokens[0]
    lm.clear_cache()
    after = lm.next_token(PROMPTS[:1])[0]  # the statistics are of the model's own distribution
    assert first.entropy == pytest.approx(after.entropy, abs=1e-6)
    alt = {t.token_id: t.logprob for t in after.top}
    if first.token_id in alt:
        assert first.logprob == pytest.approx(alt[first.token_id], abs=1e-6)
