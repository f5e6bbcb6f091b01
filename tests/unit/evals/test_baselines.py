"""Each baseline's trigger rule on hand-built token distributions, and its control flow on a tiny model."""

import math

import numpy as np
import pytest

from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError
from gatedrag.evals.baselines import METHODS, method_config
from gatedrag.gate import AnswerState, Gate, Phase, Policy
from gatedrag.lm.base import ModelCapabilities
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.signals.attention import RINDSignal
from gatedrag.signals.base import SentenceContext
from gatedrag.types import Passage, TokenStep


def toks(spec):
    """[(text, prob, entropy)] -> TokenSteps."""
    return [TokenStep(token_id=i, text=t, logprob=math.log(p), entropy=h) for i, (t, p, h) in enumerate(spec)]


CONFIDENT = toks(
    [(" Paris", 0.97, 0.1), (" is", 0.99, 0.05), (" in", 0.98, 0.1), (" France", 0.95, 0.2), (".", 0.99, 0.0)]
)
ONE_DOUBT = toks(
    [(" Paris", 0.97, 0.1), (" was", 0.99, 0.05), (" founded", 0.98, 0.1), (" in", 0.99, 0.1), (" 1789", 0.75, 1.2)]
)
SPREAD = toks([(" It", 0.85, 0.5), (" won", 0.86, 0.6), (" two", 0.85, 0.7), (" awards", 0.87, 0.5), (".", 0.9, 0.3)])


def decide(method, tokens, context=None):
    cfg = method_config(method, "hotpotqa")
    bundle = Gate(cfg.gate).evaluate(tokens, context)
    return Policy(cfg, has_retriever=True).on_sentence(bundle, AnswerState(phase=Phase.ANSWERING)).kind


def test_flare_fires_on_any_token_below_0_8_and_masks_below_0_4():
    assert decide("flare", CONFIDENT) == "accept"
    assert decide("flare", ONE_DOUBT) == "retrieve"  # p = 0.75 < 0.8, though the mean 1-p is only 0.064
    gate = Gate(method_config("flare", "hotpotqa").gate)
    low = toks([(" born", 0.9, 0.1), (" 1803", 0.3, 2.0)])
    assert gate.query_mask(low, gate.evaluate(low).asking("retrieve")) == {1}


def test_token_rag_fires_on_mean_one_minus_p_above_0_1():
    assert decide("token-rag", ONE_DOUBT) == "accept"  # mean(1-p) = 0.064
    assert decide("token-rag", SPREAD) == "retrieve"  # mean(1-p) = 0.134, no token below 0.8
    assert decide("flare", SPREAD) == "accept"
    assert decide("gated", SPREAD) == "retrieve"


def test_methods_without_a_gate_never_fire():
    for method in ("no-rag", "sr-rag", "fs-rag", "fl-rag"):
        assert decide(method, SPREAD) == "accept" and decide(method, ONE_DOUBT) == "accept"


class FakeAttention:
    """Words as tokens; attention given by a function of the token ids."""

    capabilities = ModelCapabilities(attention=True)

    def __init__(self, vocab, att):
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.words = list(vocab)
        self.att = att

    def encode(self, text):
        return [self.vocab[" " + w] for w in text.split()]

    def decode(self, ids):
        return "".join(self.words[i] for i in ids)

    def attention(self, ids):
        return self.att(list(ids))


def rind_case():
    vocab = [" Who", " founded", " the", " city", " of", " Paris?", " Paris", " was", " in", " 1789", "."]
    sentence = [
        (" Paris", 0.9, 0.2),
        (" was", 0.9, 0.3),
        (" founded", 0.5, 3.0),
        (" in", 0.9, 0.1),
        (" 1789", 0.4, 2.0),
    ]
    tokens = [TokenStep(token_id=vocab.index(t), text=t, logprob=math.log(p), entropy=h) for t, p, h in sentence]
    return vocab, tokens


def test_rind_score_by_hand():
    vocab, tokens = rind_case()

    def att(ids):  # the last row carries the column maxima [0.4, 0.1, 0.2, 0.1, 0.2]
        m = np.zeros((len(ids), len(ids)))
        m[-1, -5:] = [0.4, 0.1, 0.2, 0.1, 0.2]
        return m

    ctx = SentenceContext(question="Who founded the city of Paris?", model=FakeAttention(vocab, att))
    value = RINDSignal(threshold=1.3).evaluate(tokens, ctx)
    # scores = H * a / sum(a) * n_words = [0.4, 0.15, 3.0, 0.05, 2.0]
    assert value.value == pytest.approx(3.0) and value.fired
    assert value.token_indices == [2, 4]  # "founded" and "1789"
    assert decide("dragin", tokens, ctx) == "retrieve"
    assert RINDSignal(threshold=3.5).evaluate(tokens, ctx).fired is False


def test_rind_stopword_modes():
    vocab, tokens = rind_case()
    tokens[3] = tokens[3].model_copy(update={"entropy": 40.0})  # " in" becomes the top score

    def att(ids):
        m = np.zeros((len(ids), len(ids)))
        m[-1, -5:] = 0.2
        return m

    ctx = SentenceContext(model=FakeAttention(vocab, att))
    code = RINDSignal(threshold=1.3, stopwords="code").evaluate(tokens, ctx)
    paper = RINDSignal(threshold=1.3, stopwords="paper").evaluate(tokens, ctx)
    assert code.value == pytest.approx(40.0) and code.fired
    assert code.token_indices == [2, 4]  # the hit words are content words only
    assert paper.value == pytest.approx(3.0)  # " in" scores 0 under the paper's s_i


def test_rind_without_attention_is_traced_not_fired():
    _, tokens = rind_case()

    class TextOnly:  # e.g. an OpenAI-compatible server: no attention
        capabilities = ModelCapabilities(attention=False)

    for ctx in (SentenceContext(model=TextOnly()), SentenceContext(), None):
        value = RINDSignal().evaluate(tokens, ctx)
        assert not value.fired and value.note and "attention" in value.note


def test_qfs_picks_the_words_the_doubtful_tokens_attend_to():
    vocab, tokens = rind_case()
    weights = {" city": 0.5, " Paris?": 0.3, " Who": 0.1, " founded": 0.05, " Paris": 0.05}

    def att(ids):
        m = np.full((len(ids), len(ids)), 0.0)
        for j in range(len(ids)):
            m[j, :] = [weights.get(vocab[i], 0.0) for i in ids]
        return m

    ctx = SentenceContext(question="Who founded the city of Paris?", model=FakeAttention(vocab, att))
    value = RINDSignal(threshold=1.3, query_words=2).evaluate(
        tokens, SentenceContext(model=FakeAttention(vocab, lambda ids: np.eye(len(ids))))
    )
    value = value.model_copy(update={"token_indices": [2, 4]})
    # candidates precede the first hit word ("founded" in the sentence): question words + " Paris" " was"
    assert RINDSignal(query_words=2).formulate_queries(tokens, value, ctx) == ["city Paris"]
    lowest = RINDSignal(query_words=2, query_order="lowest").formulate_queries(tokens, value, ctx)
    assert lowest == ["founded Paris"]  # the released code's ascending sort (ties keep text order)


def test_every_method_has_a_documented_source_and_unknown_names_fail():
    for m in METHODS.values():
        assert m.reproduces and m.source
    with pytest.raises(ConfigError, match="unknown method"):
        method_config("self-rag", "hotpotqa")
    assert method_config("dragin", "2wikimultihopqa").gate.rules[-1].threshold == 1.0
    assert method_config("dragin", "hotpotqa").gate.rules[-1].query_words == 35


# -- control flow on the tiny random model -------------------------------------------------------
class Recorder:
    name = "recorder"

    def __init__(self):
        passages = [Passage(id=str(i), title=f"T{i}", text=f"alpha word{i} beta") for i in range(6)]
        self.inner = BM25Retriever.build(passages)
        self.queries = []

    def retrieve(self, queries, k):
        self.queries += list(queries)
        return self.inner.retrieve(queries, k)


TINY_PROMPT = """
name: tiny
instruction: Answer.
demos:
  - question: Who?
    answer: Him. So the answer is him.
    passages: [{title: A, text: alpha}]
"""


def tiny_config(method, tmp_path, **decoding):
    prompt = tmp_path / "tiny.yaml"
    prompt.write_text(TINY_PROMPT)
    base = PipelineConfig.model_validate({"prompt": str(prompt)})
    cfg = method_config(method, "hotpotqa", base).model_dump(mode="json")
    cfg["decoding"].update({"max_answer_tokens": 48, "max_sentence_tokens": 12, **decoding})
    return PipelineConfig.model_validate(cfg)


def test_fs_rag_retrieves_before_every_sentence_with_the_previous_one(tiny_lm, tmp_path):
    rec = Recorder()
    answer = GatedRAG(tiny_lm, rec, tiny_config("fs-rag", tmp_path)).ask("alpha?")
    kinds = [s.kind for s in answer.steps]
    assert kinds[0] == "retrieval" and rec.queries[0] == "alpha?"
    sentences = [s for s in answer.steps if s.kind == "sentence"]
    assert all(s.accepted for s in sentences)
    for prev, nxt in zip(answer.steps, answer.steps[1:]):
        if prev.kind == "sentence" and nxt.kind == "retrieval":
            assert nxt.query == " ".join(prev.text.split()[-64:]) and nxt.trigger.startswith("scheduled")
    assert answer.counts.retrievals == len(rec.queries) >= 2


def test_fl_rag_cuts_fixed_length_chunks(tiny_lm, tmp_path):
    answer = GatedRAG(tiny_lm, Recorder(), tiny_config("fl-rag", tmp_path, segment_tokens=10)).ask("alpha?")
    chunks = [s for s in answer.steps if s.kind == "sentence"]
    assert len(chunks) >= 2 and all(s.tokens == 10 for s in chunks[:-1])
    assert answer.counts.retrievals == 1 + sum(
        1 for s in answer.steps if s.kind == "retrieval" and s.trigger.startswith("scheduled")
    )


def test_token_rag_accepts_the_rest_after_a_retrieval(tiny_lm, tmp_path):
    cfg = tiny_config("token-rag", tmp_path).model_dump(mode="json")
    cfg["gate"]["rules"][0]["threshold"] = 0.0  # a random model always fires
    answer = GatedRAG(tiny_lm, Recorder(), PipelineConfig.model_validate(cfg)).ask("alpha?")
    assert answer.counts.retrievals == 1
    after = [s for s in answer.steps if s.kind == "sentence"][2:]
    assert after and all(s.accepted and "accept_after_retrieval=rest" in s.decision.note for s in after)


def test_dragin_on_a_real_attention_model(tiny_lm, tmp_path):
    cfg = tiny_config("dragin", tmp_path).model_dump(mode="json")
    cfg["gate"]["rules"][-1]["threshold"] = 0.0
    rec = Recorder()
    answer = GatedRAG(tiny_lm, rec, PipelineConfig.model_validate(cfg)).ask("alpha beta?")
    first = next(s for s in answer.steps if s.kind == "sentence")
    rind = next(v for v in first.signals if v.name == "rind")
    assert rind.note is None and rind.fired and first.decision.action == "retrieve"
    assert rec.queries and all(q.strip() for q in rec.queries)
    assert answer.counts.retrievals >= 1


def test_no_rag_and_sr_rag_retrieve_zero_and_one_times(tiny_lm, tmp_path):
    assert GatedRAG(tiny_lm, Recorder(), tiny_config("no-rag", tmp_path)).ask("alpha?").counts.retrievals == 0
    assert GatedRAG(tiny_lm, Recorder(), tiny_config("sr-rag", tmp_path)).ask("alpha?").counts.retrievals == 1


def test_quco_rag_carries_quco_thresholds_over_as_rates_and_skips_the_final_sentence():
    from gatedrag.evals.baselines import QUCO_INDEX_TOKENS

    cfg = method_config("quco-rag", "hotpotqa")
    rules = {r.signal: r for r in cfg.gate.rules}
    assert rules["entity_freq"].act and rules["cooc"].act and not rules["token_rag"].act
    assert rules["entity_freq"].unit == "per_million"
    assert rules["entity_freq"].tau == pytest.approx(1e5 * 1e6 / QUCO_INDEX_TOKENS)  # HotpotQA's 1e5 of 4.6T
    assert method_config("quco-rag", "2wikimultihopqa").gate.rules[-2].tau == pytest.approx(
        1e3 * 1e6 / QUCO_INDEX_TOKENS
    )
    assert rules["cooc"].tau_cooc == 1 and rules["cooc"].query == "head_relation"
    assert cfg.policy.check_final_sentence is False
    corpus = {r.signal: r for r in method_config("gated-corpus", "hotpotqa").gate.rules}
    assert corpus["entity_freq"].tau == 1.0 and corpus["cooc"].act
    # without a corpus backend the corpus signals are traced as unavailable and never fire
    assert Gate(cfg.gate).evaluate(SPREAD, SentenceContext()).asking("retrieve") == ()
