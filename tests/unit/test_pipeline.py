"""The controller with a tiny random model: validation, degradation, trace and JSON."""

import pytest

from gatedrag.config import (
    DecodingConfig,
    FlareRule,
    GateConfig,
    PaperSwitches,
    PipelineConfig,
    PolicyConfig,
    TokenRAGRule,
)
from gatedrag.errors import InputError
from gatedrag.pipeline import GatedRAG, extract_answer
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Answer, Hit, Passage


class FailingRetriever:
    name = "failing"

    def retrieve(self, queries, k):
        raise ConnectionError("search backend is down")


def config(batch_size: int = 8, **policy):
    return PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.0)]),  # a random model is always unsure: always fires
        decoding=DecodingConfig(max_answer_tokens=40, max_sentence_tokens=8, batch_size=batch_size),
        policy=PolicyConfig(**policy),
    )


def test_bad_questions_raise_typed_errors(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config())
    for bad in ["", "   ", None, 42]:
        with pytest.raises(InputError):
            rag.ask(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="list"):
        rag.batch("a question")  # type: ignore[arg-type]


def test_failing_retriever_degrades_and_answer_continues(tiny_lm):
    rag = GatedRAG(tiny_lm, FailingRetriever(), config())
    answer = rag.ask("Who wrote Hamlet?")
    retrievals = [s for s in answer.steps if s.kind == "retrieval"]
    assert retrievals and all("search backend is down" in s.error for s in retrievals)
    assert answer.degraded and answer.counts.retrievals == 0
    kept = [s for s in answer.steps if s.kind == "sentence" and s.accepted]
    assert kept and any(s.decision.note == "retrieval unavailable; sentence kept" for s in kept)
    assert answer.counts.generated_tokens > 0


def test_retrieval_is_traced_with_query_and_passages(tiny_lm):
    passages = [Passage(id=str(i), title=f"T{i}", text=f"word{i} alpha beta gamma") for i in range(5)]
    retriever = BM25Retriever.build(passages)
    events = []
    rag = GatedRAG(tiny_lm, retriever, config(retrieve_first=True, max_retrievals=2))
    answer = rag.ask("alpha word3?", on_event=lambda i, e: events.append(e.model_dump_json()))
    assert events == [e.model_dump_json() for e in answer.events]  # an event never changes once emitted
    first = answer.steps[0]
    assert first.kind == "retrieval" and first.trigger == "before generation" and first.passages
    sentences = [s for s in answer.steps if s.kind == "sentence"]
    for s in sentences:
        if s.decision.action == "retrieve":
            r = s.decision.reasons[0]
            fired = next(v for v in s.signals if v.name == r.signal)
            assert fired.fired and r.value == fired.value and r.value > r.threshold
    assert answer.counts.retrievals <= 1 + 2
    assert Answer.model_validate_json(answer.model_dump_json()) == answer
    assert 0.0 <= answer.confidence <= 1.0


def test_batch_keeps_order(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config(batch_size=2))
    qs = ["first?", "second?", "third?"]
    assert [a.question for a in rag.batch(qs)] == qs


def test_extract_answer():
    assert extract_answer("X is Y. So the answer is Santiago.") == "Santiago"
    assert extract_answer("so THE ANSWER IS: yes") == "yes"
    assert extract_answer("no marker here") is None
    assert extract_answer("So the answer is no. So the answer is") == "no"  # cut by the budget
    assert extract_answer("So the answer is St. Louis. Then more text") == "St. Louis"
    assert extract_answer("So the answer is 3.5 million.") == "3.5 million"


def test_passages_too_long_for_the_context_are_trimmed_and_noted(tiny_lm):
    long = [Passage(id=str(i), title=f"T{i}", text=f"alpha word{i} " + "lorem ipsum " * 110) for i in range(3)]
    rag = GatedRAG(tiny_lm, BM25Retriever.build(long), config(retrieve_first=True, max_retrievals=0))
    answer = rag.ask("alpha?")
    first = answer.steps[0]
    assert first.kind == "retrieval" and len(first.passages) == 3
    assert first.error is not None and "kept" in first.error and "of 3" in first.error
    assert answer.degraded and answer.counts.generated_tokens > 0


@pytest.mark.parametrize("with_question", [False, True])
def test_query_with_question_puts_the_question_before_the_doubtful_sentence(tiny_lm, with_question):
    passages = [Passage(id=str(i), title=f"T{i}", text=f"word{i} alpha beta gamma") for i in range(5)]
    cfg = PipelineConfig(
        gate=GateConfig(rules=[FlareRule(theta=1.0, beta=0.0)]),  # always fires, masks nothing
        decoding=DecodingConfig(max_answer_tokens=40, max_sentence_tokens=8),
        policy=PolicyConfig(max_retrievals=1),
        retrieval={"query_with_question": with_question},
    )
    question = "Which alpha word3 came first?"
    answer = GatedRAG(tiny_lm, BM25Retriever.build(passages), cfg).ask(question)
    retrieval = next(s for s in answer.steps if s.kind == "retrieval")
    assert retrieval.trigger.startswith("sentence")
    assert retrieval.query.startswith(question) is with_question
    assert retrieval.query.strip() != question  # the sentence's own words are still there


class ScriptedRetriever:
    """Returns the next passages of a script on every call: [0, 1], then [1, 2], then [3, 4], ..."""

    name = "scripted"

    def __init__(self):
        self.calls = 0

    def retrieve(self, queries, k):
        out = []
        for _ in queries:
            ids = [[0, 1], [1, 2], [3, 4], [5, 6]][min(self.calls, 3)]
            self.calls += 1
            out.append(
                [
                    Hit(passage=Passage(id=str(i), title=f"T{i}", text=f"text {i}"), score=1.0, rank=r + 1)
                    for r, i in enumerate(ids)
                ]
            )
        return out


@pytest.mark.parametrize(("carry", "second", "third"), [(0, [], []), (1, ["0"], ["1"]), (5, ["0"], ["1", "2", "0"])])
def test_carry_passages_keeps_earlier_retrievals_after_the_new_ones(tiny_lm, carry, second, third):
    cfg = PipelineConfig(
        gate=GateConfig(rules=[FlareRule(theta=1.0, beta=0.0)]),  # always fires
        decoding=DecodingConfig(max_answer_tokens=60, max_sentence_tokens=6),
        policy=PolicyConfig(retrieve_first=True, max_retrievals=3),
        retrieval={"carry_passages": carry},
    )
    rag = GatedRAG(tiny_lm, ScriptedRetriever(), cfg)
    prompts = []
    real_start = rag._start

    def spy(session, key, job, **kw):  # the passages each (re)start puts in the prompt
        prompts.append([h.passage.id for h in job.passages or []])
        return real_start(session, key, job, **kw)

    rag._start = spy
    answer = rag.ask("Which came first?")
    retrievals = [s for s in answer.steps if s.kind == "retrieval"]
    assert len(retrievals) == 3 and all(r.error is None for r in retrievals)
    assert [r.carried for r in retrievals] == [[], second, third]
    assert prompts[:3] == [["0", "1"], ["1", "2", *second], ["3", "4", *third]]


class RepeatingRetriever:
    """Returns the same two passages for every query."""

    name = "repeating"

    def retrieve(self, queries, k):
        return [
            [Hit(passage=Passage(id=str(i), title=f"T{i}", text=f"text {i}"), score=1.0, rank=i + 1) for i in range(2)]
            for _ in queries
        ]


@pytest.mark.parametrize("regenerate", [False, True])
def test_a_retrieval_with_nothing_new_keeps_the_sentence_unless_asked_to_regenerate(tiny_lm, regenerate):
    cfg = PipelineConfig(
        gate=GateConfig(rules=[FlareRule(theta=1.0, beta=0.0)]),  # always fires
        decoding=DecodingConfig(max_answer_tokens=40, max_sentence_tokens=6),
        policy=PolicyConfig(
            retrieve_first=True, max_retrievals=2, paper=PaperSwitches(regenerate_without_new_passages=regenerate)
        ),
    )
    answer = GatedRAG(tiny_lm, RepeatingRetriever(), cfg).ask("Which came first?")
    first, second = (s for s in answer.steps if s.kind == "retrieval")
    assert first.note is None and (second.note is not None) is not regenerate
    rejected = answer.steps[second.index - 1]
    assert rejected.kind == "sentence" and rejected.decision.action == "retrieve"
    assert rejected.accepted is not regenerate  # kept as written, or replaced by a regenerated one
    if not regenerate:
        assert rejected.decision.note == "no new passages; sentence kept"
        assert answer.steps[second.index + 1].trigger is None  # no regeneration followed
    else:
        assert answer.steps[second.index + 1].trigger == "regenerated after retrieval"
    assert answer.counts.retrievals == 2 and not answer.degraded


def test_query_with_previous_puts_the_last_accepted_sentences_first(tiny_lm):
    cfg = PipelineConfig(
        gate=GateConfig(rules=[FlareRule(theta=1.0, beta=0.0)]),  # always fires, masks nothing
        decoding=DecodingConfig(max_answer_tokens=60, max_sentence_tokens=6),
        policy=PolicyConfig(max_retrievals=3),
        retrieval={"query_with_previous": 1, "query_with_question": True},
    )
    question = "Which came first?"
    answer = GatedRAG(tiny_lm, ScriptedRetriever(), cfg).ask(question)
    accepted_before = []
    checked = 0
    for step in answer.steps:
        if step.kind == "retrieval":
            rejected = answer.steps[step.index - 1].text.strip()
            previous = accepted_before[-1] if accepted_before else ""
            expected = " ".join(p for p in (question, previous, rejected) if p)
            assert step.query == " ".join(expected.split()[-64:])
            checked += bool(previous)
        elif step.kind == "sentence" and step.accepted:
            accepted_before.append(step.text.strip())
    assert checked >= 1  # at least one query carried an earlier sentence


def test_the_deep_search_rung_has_its_slot(tiny_lm):
    from gatedrag.gate import Gate
    from gatedrag.signals.base import SignalBase
    from gatedrag.types import SignalValue

    class Deeper(SignalBase):
        name = "deeper"
        rung = "deep_search"

        def evaluate(self, tokens, context=None):
            return SignalValue(name=self.name, value=1.0, threshold=0.5, fired=True)

        def formulate_queries(self, tokens, value, context):
            return ["alpha word1"]

    passages = [Passage(id=str(i), title=f"T{i}", text=f"word{i} alpha") for i in range(3)]
    cfg = config(max_retrievals=1)
    answer = GatedRAG(tiny_lm, BM25Retriever.build(passages), cfg, gate=Gate(signals=[Deeper()])).ask("alpha?")
    first = answer.steps[0]
    assert first.decision.action == "deep_search" and answer.steps[1].query == "alpha word1"
    assert answer.counts.retrievals == 1 and answer.steps[2].trigger == "regenerated after retrieval"


def test_given_passages_are_in_the_prompt_from_the_start_and_traced(tiny_lm):
    given = [Passage(id="g1", title="Gold", text="alpha beta"), {"id": "g2", "title": "Two", "text": "gamma"}]
    rag = GatedRAG(tiny_lm, None, config(max_retrievals=0))
    events = []
    answer = rag.ask("alpha?", passages=given, on_event=lambda i, e: events.append(e))
    assert events[0].type == "passages_given" and [p.id for p in events[0].passages] == ["g1", "g2"]
    first = answer.steps[0]
    assert first.kind == "retrieval" and first.trigger == "given with the question" and first.query is None
    assert answer.counts.retrievals == 0  # nothing was looked up
    accepted = [e for e in answer.events if e.type == "sentence_accepted"]
    assert accepted and all(e.passages == ["g1", "g2"] and e.titles == ["Gold", "Two"] for e in accepted)
    closed = rag.ask("alpha?")
    assert answer.counts.prompt_tokens > closed.counts.prompt_tokens  # the passages are in the prompt
    batch = rag.batch(["alpha?", "beta?"], passages=[given, None])
    assert batch[0].steps[0].trigger == "given with the question"
    assert all(s.trigger != "given with the question" for s in batch[1].steps)


def test_given_passages_are_validated(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config())
    with pytest.raises(InputError, match="list of passages"):
        rag.ask("q?", passages="not a list")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"passages\[1\]"):
        rag.ask("q?", passages=[Passage(id="1", text="x"), {"title": "no id"}])  # type: ignore[list-item]
    with pytest.raises(InputError, match="2 passage lists for 1 questions"):
        rag.batch(["q?"], passages=[[], []])
