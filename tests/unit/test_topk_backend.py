"""The backend-neutral protocol: scoring without generating, and the whole pipeline on a backend
that returns only top-k log-probabilities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatedrag.config import (
    DecodingConfig,
    EntropyRule,
    FlareRule,
    GateConfig,
    GNLLRule,
    PipelineConfig,
    PolicyConfig,
    RINDRule,
    TokenRAGRule,
)
from gatedrag.errors import InputError
from gatedrag.lm.base import LanguageModel, Twin
from gatedrag.lm.topk import TopKLanguageModel, topk_entropy
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=10.0), min_size=2, max_size=40), st.integers(1, 40))
def test_topk_entropy_is_a_lower_bound_and_exact_with_the_whole_vocabulary(weights, k):
    total = sum(weights)
    probs = sorted((w / total for w in weights), reverse=True)
    full = -sum(p * math.log(p) for p in probs)
    estimate = topk_entropy([math.log(p) for p in probs[:k]])
    assert estimate <= full + 1e-9
    if k >= len(probs):
        assert estimate == pytest.approx(full, abs=1e-9)


def test_score_and_next_token_agree_with_decoding(tiny_lm):
    assert isinstance(tiny_lm, LanguageModel) and tiny_lm.capabilities.attention
    s = tiny_lm.open_session()
    s.start(0, "Where is Paris? ")
    out = s.decode([0], on_sentence=lambda k, x: "continue", budgets={0: 6}, regroup=False)
    steps = [t for sent in out[0].sentences for t in sent.tokens]
    text = "".join(t.text for t in steps)
    (scored,) = tiny_lm.score(["Where is Paris? "], [text])
    assert [t.token_id for t in scored] == [t.token_id for t in steps]
    for a, b in zip(scored, steps):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4) and a.entropy == pytest.approx(b.entropy, abs=1e-4)
    (nxt,) = tiny_lm.next_token(["Where is Paris? "])
    assert nxt.top[0].token_id == steps[0].token_id and nxt.entropy == pytest.approx(steps[0].entropy, abs=1e-4)
    # batched: pairs of different lengths in one pass give what each gives alone
    pairs = (["Where is Paris? ", "Q"], [text, " a longer continuation"])
    both = tiny_lm.score(*pairs)
    assert [t.logprob for t in both[0]] == pytest.approx([t.logprob for t in scored], abs=1e-4)
    assert [t.logprob for t in both[1]] == pytest.approx(
        [t.logprob for t in tiny_lm.score(["Q"], [" a longer continuation"])[0]], abs=1e-4
    )
    with pytest.raises(InputError):
        tiny_lm.score(["a"], ["b", "c"])


def _rag(lm, **gate) -> GatedRAG:
    passages = [Passage(id=str(i), title=f"T{i}", text=f"word{i} alpha beta") for i in range(4)]
    rules = [TokenRAGRule(threshold=0.98475), FlareRule(act=False), GNLLRule(), EntropyRule(), RINDRule(act=False)]
    cfg = PipelineConfig(
        gate=GateConfig(rules=rules, **gate),
        decoding=DecodingConfig(max_answer_tokens=40, max_sentence_tokens=7),
        policy=PolicyConfig(max_retrievals=2),
    )
    return GatedRAG(lm, BM25Retriever.build(passages), cfg)


def test_the_pipeline_runs_on_top_k_log_probabilities_only(tiny_lm):
    topk = TopKLanguageModel(tiny_lm, k=3)
    assert not topk.capabilities.full_entropy and not topk.capabilities.twins and not topk.capabilities.attention
    full = _rag(tiny_lm).ask("alpha word1?")
    top = _rag(topk).ask("alpha word1?")
    assert top.text == full.text and top.counts.retrievals == full.counts.retrievals  # probabilities are exact
    for a, b in zip(full.steps, top.steps):
        if a.kind != "sentence":
            continue
        va, vb = {v.name: v for v in a.signals}, {v.name: v for v in b.signals}
        for name in ("token_rag", "flare", "gnll"):
            assert vb[name].value == pytest.approx(va[name].value)
        assert vb["entropy"].value <= va["entropy"].value + 1e-6  # the estimate is a lower bound
        assert vb["rind"].note and "attention" in vb["rind"].note  # no attention from such a backend
    with pytest.raises(InputError, match="twins"):
        topk.open_session().start(0, "x", twin=Twin(prompt="y"))
    with pytest.raises(InputError):
        TopKLanguageModel(tiny_lm, k=50)  # the inner model keeps only 3


def test_top_k_backend_from_config():
    cfg = PipelineConfig.model_validate({"model": {"backend": "topk", "top_k": 20}})
    assert cfg.model.backend == "topk"
    with pytest.raises(ValueError):
        PipelineConfig.model_validate({"model": {"backend": "topk", "top_k": 0}})
