"""Streaming: events arrive as they are emitted, never change afterwards, and add up to the answer."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import TypeAdapter

from gatedrag.config import DecodingConfig, GateConfig, PipelineConfig, PolicyConfig, TokenRAGRule
from gatedrag.errors import InputError
from gatedrag.events import Answer, Event, Finished, Retrieved, SentenceAccepted, SentenceProposed
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage


def rag(tiny_lm) -> GatedRAG:
    passages = [Passage(id=str(i), title=f"T{i}", text=f"word{i} alpha beta") for i in range(4)]
    cfg = PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.0)]),
        decoding=DecodingConfig(max_answer_tokens=30, max_sentence_tokens=6),
        policy=PolicyConfig(max_retrievals=2),
    )
    return GatedRAG(tiny_lm, BM25Retriever.build(passages), cfg)


def test_stream_yields_the_events_of_ask_in_order(tiny_lm):
    r = rag(tiny_lm)
    seen = []
    for event in r.stream("alpha word1?"):
        seen.append((event.model_dump_json(), event))  # a consumer's copy, taken on arrival
    events = [e for _, e in seen]
    assert isinstance(events[-1], Finished) and [e.seq for e in events] == list(range(len(events)))
    assert [copy for copy, _ in seen] == [e.model_dump_json() for e in events]
    streamed = Answer.from_events("alpha word1?", events)
    asked = r.ask("alpha word1?")
    assert streamed.text == asked.text and streamed.steps == asked.steps
    kinds = {type(e) for e in events}
    assert {SentenceProposed, SentenceAccepted, Retrieved} <= kinds
    # every accepted sentence was proposed first, and the answer's text is the accepted ones
    proposed = {e.sentence for e in events if isinstance(e, SentenceProposed)}
    assert all(e.sentence in proposed for e in events if isinstance(e, SentenceAccepted))


def test_events_round_trip_through_json(tiny_lm):
    answer = rag(tiny_lm).ask("alpha word2?")
    adapter = TypeAdapter(list[Event])
    assert adapter.validate_json(adapter.dump_json(answer.events)) == answer.events
    assert Answer.model_validate_json(answer.model_dump_json()) == answer


def test_astream_and_early_close(tiny_lm):
    r = rag(tiny_lm)

    async def collect():
        return [e async for e in r.astream("alpha word3?")]

    events = asyncio.run(collect())
    assert isinstance(events[-1], Finished)
    it = r.stream("alpha word3?")
    first = next(it)
    it.close()  # the worker stops at its next event; nothing hangs
    assert first.seq == 0
    assert r.ask("alpha word3?").text == events[-1].text  # the model is free again


def test_stream_validates_its_question(tiny_lm):
    with pytest.raises(InputError):
        next(rag(tiny_lm).stream("  "))


def test_retrievals_are_announced_and_accepted_sentences_cite_their_passages(tiny_lm):
    answer = rag(tiny_lm).ask("alpha word1?")
    events = answer.events
    started = [i for i, e in enumerate(events) if e.type == "retrieval_started"]
    found = [i for i, e in enumerate(events) if e.type == "retrieval"]
    assert started and len(started) == len(found) and all(s + 1 == f for s, f in zip(started, found))
    assert all(events[s].queries and events[s].trigger == events[f].trigger for s, f in zip(started, found))
    texts = {p.id: p.text for e in events if e.type == "retrieval" for p in e.passages}
    assert texts and all(texts.values())  # the events carry the passages' text; the steps do not
    assert all(not p.text for s in answer.steps for p in s.passages)
    accepted = [e for e in events if isinstance(e, SentenceAccepted)]
    assert all(e.confidence is not None and 0 < e.confidence <= 1 for e in accepted)
    cited = [pid for e in accepted for pid in e.passages]
    assert cited and [p.id for p in answer.sources] == list(dict.fromkeys(cited))
    assert all(p.text == texts[p.id] for p in answer.sources)
