"""Draft-first answering (``PipelineConfig.draft``) with a tiny random model: the draft is kept
when its judge is satisfied, and otherwise the answer is the one retrieve-first would give."""

import pytest

from gatedrag.config import (
    DecodingConfig,
    DraftConfig,
    FlareRule,
    GateConfig,
    PaperSwitches,
    PipelineConfig,
    PolicyConfig,
    TokenRAGRule,
    parse_config,
)
from gatedrag.errors import ConfigError
from gatedrag.events import ROLE_TRIGGER
from gatedrag.gate import Gate
from gatedrag.pipeline import GatedRAG
from gatedrag.signals.base import SignalBase
from gatedrag.types import Hit, Passage, SignalValue

NEVER = FlareRule(theta=1e-9)  # no token of a 97-token vocabulary is that unlikely
ALWAYS = FlareRule(theta=1.0, beta=0.0)  # every token is below probability 1


class CountingRetriever:
    name = "counting"

    def __init__(self):
        self.queries: list[str] = []

    def retrieve(self, queries, k):
        self.queries += queries
        return [
            [Hit(passage=Passage(id=str(i), title=f"T{i}", text=f"text {i}"), score=1.0, rank=i + 1) for i in range(2)]
            for _ in queries
        ]


class FailingRetriever:
    name = "failing"

    def retrieve(self, queries, k):
        raise ConnectionError("search backend is down")


DRAFT_TRIGGER = ROLE_TRIGGER["draft"]


class NthSentence(SignalBase):
    """A judge that fires on the ``n``-th sentence it sees (1-based) and on no other."""

    name = "nth"

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def evaluate(self, tokens, context=None):
        self.seen += 1
        hit = self.seen == self.n
        return SignalValue(name=self.name, value=float(hit), threshold=0.5, fired=hit)

    def query_mask(self, tokens):
        return set()


def cfg(draft: DraftConfig | None, gate_rule=NEVER, batch_size=8, accept_after_retrieval="sentence", **policy):
    return PipelineConfig(
        gate=GateConfig(rules=[gate_rule]),
        decoding=DecodingConfig(max_answer_tokens=40, max_sentence_tokens=8, batch_size=batch_size),
        policy=PolicyConfig(paper=PaperSwitches(accept_after_retrieval=accept_after_retrieval), **policy),
        draft=draft,
    )


def test_a_confident_draft_is_the_answer_without_retrieval(tiny_lm):
    retriever = CountingRetriever()
    answer = GatedRAG(tiny_lm, retriever, cfg(DraftConfig(rules=[NEVER]))).ask("Who wrote Hamlet?")
    closed_book = GatedRAG(tiny_lm, None, cfg(None)).ask("Who wrote Hamlet?")
    assert answer.text == closed_book.text and answer.text
    assert retriever.queries == [] and answer.counts.retrievals == 0
    sentences = [s for s in answer.steps if s.kind == "sentence"]
    assert sentences and all(s.accepted and s.trigger == DRAFT_TRIGGER for s in sentences)
    assert all(s.decision.action == "accept" for s in sentences)


def test_a_doubtful_draft_is_replaced_by_the_retrieve_first_answer(tiny_lm):
    retriever = CountingRetriever()
    question = "Who wrote Hamlet?"
    answer = GatedRAG(tiny_lm, retriever, cfg(DraftConfig(rules=[ALWAYS]))).ask(question)
    reference = GatedRAG(tiny_lm, CountingRetriever(), cfg(None, retrieve_first=True)).ask(question)
    assert answer.text == reference.text
    assert retriever.queries == [question] and answer.counts.retrievals == 1
    draft, retrieval = answer.steps[0], answer.steps[1]
    assert draft.kind == "sentence" and draft.trigger == DRAFT_TRIGGER and not draft.accepted
    assert draft.decision.action == "retrieve" and draft.decision.reasons[0].signal == "flare"
    assert retrieval.kind == "retrieval" and retrieval.trigger == "doubtful draft sentence 1"
    rewritten = [s for s in answer.steps[2:] if s.kind == "sentence"]
    assert rewritten and all(s.trigger is None and s.accepted for s in rewritten)
    assert answer.counts.generated_tokens == reference.counts.generated_tokens + draft.tokens


def test_the_draft_is_judged_by_its_own_rules_and_the_gate_by_its_own(tiny_lm):
    # the main gate would retrieve on every sentence, but only the draft's judge speaks for a draft
    answer = GatedRAG(tiny_lm, CountingRetriever(), cfg(DraftConfig(rules=[NEVER]), gate_rule=ALWAYS)).ask("Q?")
    assert answer.counts.retrievals == 0
    first = next(s for s in answer.steps if s.kind == "sentence")
    traced = {v.name: v for v in first.signals}
    assert set(traced) == {"flare"} and traced["flare"].threshold == pytest.approx(1 - 1e-9)
    # a main-gate signal the draft does not use is traced, never acting
    both = cfg(DraftConfig(rules=[NEVER]), gate_rule=TokenRAGRule(threshold=0.0))
    first = next(s for s in GatedRAG(tiny_lm, CountingRetriever(), both).ask("Q?").steps if s.kind == "sentence")
    token_rag = next(v for v in first.signals if v.name == "token_rag")
    assert token_rag.fired and not token_rag.acting and first.accepted


def test_a_later_doubtful_sentence_discards_the_whole_draft(tiny_lm):
    retriever = CountingRetriever()
    config = cfg(DraftConfig(rules=[NEVER]), max_retrievals=1)
    rag = GatedRAG(tiny_lm, retriever, config, draft_gate=Gate(signals=[NthSentence(2)]))
    answer = rag.ask("Who wrote Hamlet?")
    reference = GatedRAG(tiny_lm, CountingRetriever(), cfg(None, retrieve_first=True)).ask("Who wrote Hamlet?")
    assert answer.text == reference.text and retriever.queries == ["Who wrote Hamlet?"]
    first, second, retrieval = answer.steps[:3]
    assert first.decision.action == "accept" and second.decision.action == "retrieve"
    assert not first.accepted and not second.accepted and "discarded" in first.note
    assert retrieval.trigger == "doubtful draft sentence 2"


def test_rest_of_the_answer_is_ungated_with_accept_after_retrieval_rest(tiny_lm):
    config = cfg(DraftConfig(rules=[ALWAYS]), gate_rule=ALWAYS, accept_after_retrieval="rest", max_retrievals=3)
    answer = GatedRAG(tiny_lm, CountingRetriever(), config).ask("Q?")
    assert answer.counts.retrievals == 1  # the gate would otherwise retrieve for every rewritten sentence
    gated = cfg(DraftConfig(rules=[ALWAYS]), gate_rule=ALWAYS, max_retrievals=3)
    assert GatedRAG(tiny_lm, CountingRetriever(), gated).ask("Q?").counts.retrievals > 1


def test_no_retrieval_budget_keeps_the_draft(tiny_lm):
    retriever = CountingRetriever()
    answer = GatedRAG(tiny_lm, retriever, cfg(DraftConfig(rules=[ALWAYS]), max_retrievals=0)).ask("Q?")
    assert retriever.queries == [] and answer.text
    sentences = [s for s in answer.steps if s.kind == "sentence"]
    assert all(s.accepted and s.decision.note == "retrieval budget of 0 spent" for s in sentences)


def test_a_failing_retriever_keeps_the_draft_sentence_and_the_answer_goes_on(tiny_lm):
    answer = GatedRAG(tiny_lm, FailingRetriever(), cfg(DraftConfig(rules=[ALWAYS]))).ask("Q?")
    assert answer.degraded and answer.counts.retrievals == 0 and answer.text
    first = answer.steps[0]
    assert first.accepted and first.decision.note == "retrieval unavailable; sentence kept"
    assert "search backend is down" in answer.steps[1].error


class QuestionJudge(SignalBase):
    """Fires on every sentence of an answer to one of ``doubtful`` questions (a random model writes
    the same text whatever the question): it decides the same in a batch as alone."""

    name = "doubtful_question"
    needs = frozenset({"context"})

    def __init__(self, doubtful: set[str]):
        self.doubtful = doubtful

    def evaluate(self, tokens, context):
        hit = context.question in self.doubtful
        return SignalValue(name=self.name, value=float(hit), threshold=0.5, fired=hit)


def test_batched_drafts_match_one_by_one(tiny_lm):
    rag = GatedRAG(
        tiny_lm,
        CountingRetriever(),
        cfg(DraftConfig(), batch_size=4),
        draft_gate=Gate(signals=[QuestionJudge({"second question?", "third one?"})]),
    )
    questions = ["first?", "second question?", "third one?", "and a fourth?"]
    batched = rag.batch(questions)
    singles = [rag.ask(q) for q in questions]
    assert [a.text for a in batched] == [a.text for a in singles]
    retrievals = [a.counts.retrievals for a in batched]
    assert retrievals == [a.counts.retrievals for a in singles]
    assert retrievals == [0, 1, 1, 0]  # drafts kept and replaced side by side in one batch
    assert batched[0].text == batched[3].text != batched[1].text == batched[2].text


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        ({"rules": []}, "at least 1"),
        ({"rules": [{"signal": "gnll"}]}, "acting rule with a threshold"),
        ({"rules": [{"signal": "flare", "act": False}]}, "acting rule with a threshold"),
        ({"rules": [{"signal": "entity_freq"}]}, "judges the question"),
        ({"rules": [{"signal": "confidence_gain"}]}, "needs retrieved passages"),
        ({"rules": [{"signal": "flare"}, {"signal": "flare"}]}, "once"),
    ],
)
def test_bad_draft_configs_are_refused_with_the_reason(draft, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"draft": draft})


def test_draft_and_retrieve_first_exclude_each_other():
    with pytest.raises(ConfigError, match="exclude each other"):
        parse_config({"draft": {}, "policy": {"retrieve_first": True}})
    assert parse_config({"draft": {}}).draft.rules[0].theta == 0.2
