"""The gated Runnable: LCEL composition, streaming that adds up to invoke, custom events per trace
event, a child retriever run per retrieval, batching and bad input."""

from __future__ import annotations

import asyncio

import pytest
from helpers.scripted import ScriptedLM
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore

from gatedrag.config import DraftConfig, GateConfig, PipelineConfig, TokenRAGRule
from gatedrag.connectors.langchain import GatedRAGRunnable, LangChainRetriever, answer_of
from gatedrag.errors import InputError
from gatedrag.pipeline import GatedRAG

DOCS = [
    Document(page_content="Paris is the capital of France.", id="paris", metadata={"title": "Paris", "lang": "en"}),
    Document(page_content="Rome is the capital of Italy.", id="rome", metadata={"title": "Rome"}),
]


def gated(*, draft: bool = False, batch_size: int = 8) -> tuple[GatedRAGRunnable, ScriptedLM]:
    lm = ScriptedLM(
        closed_book=[("France is in Europe.", 0.9), ("So the answer is Lyon.", 0.2)],
        with_context=[("France is in Europe.", 0.9), ("So the answer is Paris.", 0.9)],
    )
    rules = [TokenRAGRule(threshold=0.5)]
    cfg = PipelineConfig(gate=GateConfig(rules=rules), decoding={"batch_size": batch_size})
    if draft:
        cfg = cfg.model_copy(update={"draft": DraftConfig(rules=rules)})
    store = InMemoryVectorStore.from_documents(DOCS, DeterministicFakeEmbedding(size=32))
    return GatedRAGRunnable.from_rag(GatedRAG(lm, LangChainRetriever(store, name="memory"), cfg)), lm


class Recorder(BaseCallbackHandler):
    def __init__(self):
        self.custom: list[tuple[str, dict]] = []
        self.retriever: list[tuple[str, object]] = []
        self.tags: list[list[str]] = []

    def on_custom_event(self, name, data, *, run_id, tags=None, metadata=None, **kw):
        self.custom.append((name, data))

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, tags=None, **kw):
        self.retriever.append(("start", query))
        self.tags.append(list(tags or []))

    def on_retriever_end(self, documents, *, run_id, parent_run_id=None, **kw):
        self.retriever.append(("end", [d.id for d in documents]))


def test_invoke_answers_with_metadata_and_composes_in_lcel():
    runnable, _ = gated()
    message = runnable.invoke("What is the capital of France?")
    meta = message.response_metadata
    assert message.content == "France is in Europe. So the answer is Paris."
    assert meta["answer"] == "Paris" and meta["retrievals"] == 1 and not meta["degraded"]
    assert [s["text"] for s in meta["sentences"]] == ["France is in Europe.", "So the answer is Paris."]
    cited = meta["sentences"][1]["citations"]
    assert cited and {c["id"] for c in cited} <= {"paris", "rome"} and all(c["title"] for c in cited)
    assert meta["sentences"][0]["citations"] == [] and meta["sentences"][1]["confidence"] == pytest.approx(0.9)
    assert {s["id"] for s in meta["sources"]} == {c["id"] for c in cited}
    assert answer_of(message).answer == "Paris"
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | runnable | StrOutputParser()
    assert chain.invoke({"q": "What is the capital of France?"}).endswith("So the answer is Paris.")


def test_stream_adds_up_to_invoke_one_chunk_per_sentence():
    runnable, _ = gated()
    chunks = list(runnable.stream("What is the capital of France?"))
    assert [c.content for c in chunks] == ["France is in Europe.", " So the answer is Paris.", ""]
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    invoked = runnable.invoke("What is the capital of France?")
    assert total.content == invoked.content
    meta = {k: v for k, v in total.response_metadata.items() if k != "gatedrag"}
    assert meta == {k: v for k, v in invoked.response_metadata.items() if k != "gatedrag"}


def test_a_discarded_draft_is_never_streamed():
    runnable, _ = gated(draft=True)
    chunks = [c.content for c in runnable.stream("What is the capital of France?")]
    assert "So the answer is Lyon." not in " ".join(chunks) and chunks[-2].endswith("So the answer is Paris.")


def test_every_trace_event_is_a_custom_event_and_every_retrieval_a_retriever_run():
    runnable, _ = gated()
    rec = Recorder()
    answer = answer_of(runnable.invoke("Capital of France?", config={"callbacks": [rec], "tags": ["mine"]}))
    assert [name for name, _ in rec.custom] == ["gatedrag_" + e.type for e in answer.events]
    proposed = next(
        d for n, d in rec.custom if n == "gatedrag_sentence_proposed" and d["decision"]["action"] != "accept"
    )
    reason = proposed["decision"]["reasons"][0]
    assert reason["signal"] == "token_rag" and reason["value"] > reason["threshold"]
    assert rec.retriever[0][0] == "start" and "Lyon" not in rec.retriever[0][1]  # the doubtful token masked
    found = next(e for e in answer.events if e.type == "retrieval")
    assert rec.retriever[1] == ("end", [p.id for p in found.passages]) and len(rec.retriever) == 2
    assert rec.tags == [["mine"]]


async def test_astream_events_carries_the_decisions_and_the_retriever_runs():
    runnable, _ = gated()
    kinds = []
    async for ev in runnable.astream_events("Capital of France?", version="v2"):
        kinds.append((ev["event"], ev.get("name")))
    names = [n for e, n in kinds if e == "on_custom_event"]
    assert "gatedrag_sentence_proposed" in names and "gatedrag_retrieval" in names and names[-1] == "gatedrag_finished"
    assert ("on_retriever_start", "memory") in kinds and ("on_retriever_end", "memory") in kinds
    streamed = [e for e, _ in kinds if e == "on_chain_stream"]
    assert len(streamed) == 3 and kinds[0][0] == "on_chain_start" and kinds[-1][0] == "on_chain_end"


async def test_async_invoke_batch_and_stream_leave_the_loop_free():
    runnable, _ = gated()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    t = asyncio.create_task(ticker())
    message = await runnable.ainvoke({"question": "Capital of France?"})
    many = await runnable.abatch(["Capital of France?", {"question": "Again?"}])
    chunks = [c async for c in runnable.astream("Capital of France?")]
    t.cancel()
    assert (
        message.response_metadata["answer"] == "Paris"
        and [m.response_metadata["answer"] for m in many] == ["Paris"] * 2
    )
    assert "".join(c.content for c in chunks) == message.content and ticks > 0


def test_batch_decodes_together_honours_max_concurrency_and_keeps_bad_inputs_apart():
    runnable, _ = gated()
    out = runnable.batch(["Capital of France?", "", "Capital of France?"], return_exceptions=True)
    assert isinstance(out[1], InputError)
    assert [out[0].response_metadata["answer"], out[2].response_metadata["answer"]] == ["Paris"] * 2
    with pytest.raises(InputError):
        runnable.batch(["Capital of France?", 7])
    groups, batch = [], runnable.rag.batch

    def spy(questions, **kw):
        groups.append(len(questions))
        return batch(questions, **kw)

    runnable.rag.batch = spy  # type: ignore[method-assign]
    rec = Recorder()
    runnable.batch(["A?", "B?", "C?"], config={"max_concurrency": 2, "callbacks": [rec]})
    runnable.batch(["A?", "B?", "C?"])
    assert groups == [2, 1, 3] and sum(1 for k, _ in rec.retriever if k == "start") == 3


@pytest.mark.parametrize(
    "bad",
    ["", "   ", 3, None, {"text": "no question key"}, {"question": ["a"]}, {"question": "q", "passages": "p"}, []],
)
def test_bad_input_is_a_typed_error(bad):
    runnable, _ = gated()
    with pytest.raises(InputError):
        runnable.invoke(bad)


def test_questions_come_from_messages_and_passages_from_documents():
    runnable, _ = gated()
    message = runnable.invoke([HumanMessage("ignored"), HumanMessage("Capital of France?")])
    assert answer_of(message).question == "Capital of France?"
    given = runnable.invoke({"question": "Capital of France?", "passages": [DOCS[0], "Lyon is in France."]})
    assert answer_of(given).steps[0].trigger == "given with the question"
    assert answer_of(given).counts.retrievals == 0 and given.response_metadata["answer"] == "Paris"


def test_a_runnable_upstream_feeds_the_question():
    runnable, _ = gated()
    chain = RunnableLambda(lambda d: d["q"]) | runnable
    assert chain.invoke({"q": "Capital of France?"}).response_metadata["answer"] == "Paris"


def test_the_runnable_config_is_a_serialisable_gatedrag_config():
    cfg = PipelineConfig(gate=GateConfig(rules=[TokenRAGRule(threshold=0.3)]))
    runnable = GatedRAGRunnable(pipeline=cfg)
    data = runnable.model_dump(mode="json")
    again = GatedRAGRunnable.model_validate(data)
    assert again.pipeline == cfg and again._rag is None  # the pipeline is built on first use, not before
    with pytest.raises(InputError):
        GatedRAGRunnable.from_rag("not a pipeline")  # type: ignore[arg-type]
