"""The gated answer as a LangChain Runnable: ``invoke`` / ``batch`` / ``stream`` and their async
twins, one custom event per trace event and one retriever run per retrieval.

Input: a question (``str``), a dict (``{"question": ..., "passages": [...]}``; ``input`` / ``query``
and ``context`` are read too, passages as ``Document``\\ s, passages, dicts or strings), a prompt
value or messages (the last human message is the question). Output: an ``AIMessage`` whose
``content`` is the answer's text, so it composes with output parsers; its ``response_metadata``
holds the short ``answer``, its ``confidence``, ``finish_reason``, ``retrievals``, ``degraded``,
the cited ``sources``, one entry a ``sentences`` (text, confidence, citations) and the whole
gatedrag answer under ``gatedrag`` (:func:`answer_of` reads it back).

``stream`` yields one ``AIMessageChunk`` per accepted sentence (a closed-book draft's sentences
only once the draft is kept) and a last chunk with the answer-level metadata; their sum is what
``invoke`` returns. During a run every trace event is dispatched as the custom event
``gatedrag_<type>`` (``gatedrag_sentence_proposed`` carries the signals, thresholds and the
decision; ``gatedrag_retrieval_started`` the queries; ``gatedrag_retrieval`` the passages), and each
retrieval is a child retriever run (``on_retriever_start`` / ``on_retriever_end``, or
``on_retriever_error`` when it failed). One pipeline answers one call at a time; ``batch``
decodes its inputs together, at most ``max_concurrency`` at once.

Example:
    >>> from langchain_core.output_parsers import StrOutputParser
    >>> from gatedrag.connectors.langchain import GatedRAGRunnable, answer_of
    >>> from gatedrag.pipeline import GatedRAG
    >>> from helpers.scripted import ScriptedLM
    >>> lm = ScriptedLM(closed_book=[("So the answer is Paris.", 0.95)], with_context=[])
    >>> gated = GatedRAGRunnable.from_rag(GatedRAG(lm, None))
    >>> (gated | StrOutputParser()).invoke("What is the capital of France?")
    'So the answer is Paris.'
    >>> message = gated.invoke({"question": "What is the capital of France?"})
    >>> message.response_metadata["answer"], answer_of(message).counts.retrievals
    ('Paris', 0)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForChainRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableSerializable, ensure_config
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field, PrivateAttr

from gatedrag.config import PipelineConfig
from gatedrag.errors import InputError, RetrievalError
from gatedrag.events import (
    Answer,
    DraftDiscarded,
    Event,
    Finished,
    RetrievalStarted,
    Retrieved,
    SentenceAccepted,
    SentenceProposed,
)
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.base import Retriever
from gatedrag.types import Passage

from .documents import to_document, to_passage
from .retrievers import LangChainRetriever

EVENT_PREFIX = "gatedrag_"
"""Custom events are named ``gatedrag_<event type>``."""

Parsed = tuple[str, list[Passage] | None]


# -- input -----------------------------------------------------------------------------------------
def _passage(item: Any, i: int) -> Passage:
    if isinstance(item, Document):
        return to_passage(item)
    if isinstance(item, str):
        return Passage(id=f"given:{i}", text=item)
    if isinstance(item, Passage):
        return item
    if isinstance(item, Mapping):
        try:
            return Passage.model_validate(item)
        except ValueError as err:
            raise InputError(f"passages[{i}] is not a passage ({{id, title, text}}): {err}") from None
    raise InputError(f"passages[{i}] is a {type(item).__name__}: give Documents, passages, dicts or strings")


def _question_of_messages(messages: Sequence[BaseMessage]) -> str:
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    if not humans:
        raise InputError("the messages hold no human message to answer")
    content = humans[-1].content
    if isinstance(content, str):
        return content
    return " ".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def parse_input(value: Any) -> Parsed:
    """The question and the passages given with it (``None``: none given)."""
    passages = None
    if isinstance(value, str):
        question: Any = value
    elif isinstance(value, PromptValue):
        question = _question_of_messages(value.to_messages())
    elif isinstance(value, BaseMessage):
        question = _question_of_messages([value])
    elif isinstance(value, Mapping):
        key = next((k for k in ("question", "input", "query") if k in value), None)
        if key is None:
            raise InputError(f"the input dict needs a 'question' key (got {sorted(map(str, value))})")
        question = value[key]
        given = value.get("passages", value.get("context"))
        if given is not None:
            if isinstance(given, str | bytes) or not isinstance(given, Sequence):
                raise InputError(f"passages must be a list, got {type(given).__name__}")
            passages = [_passage(p, i) for i, p in enumerate(given)]
    elif isinstance(value, Sequence) and value and all(isinstance(m, BaseMessage) for m in value):
        question = _question_of_messages(value)
    else:
        raise InputError(f"cannot answer a {type(value).__name__}: give a question, a dict, a prompt or messages")
    if not isinstance(question, str) or not question.strip():
        raise InputError(
            "the question is empty: ask something" if isinstance(question, str) else "the question must be a string"
        )
    return question.strip(), passages


# -- output ----------------------------------------------------------------------------------------
def _sentence_entry(event: SentenceAccepted) -> dict[str, Any]:
    return {
        "sentence": event.sentence,
        "text": event.text,
        "confidence": event.confidence,
        "citations": [{"id": pid, "title": title} for pid, title in zip(event.passages, event.titles)],
    }


def _answer_metadata(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.answer,
        "confidence": answer.confidence,
        "finish_reason": answer.finish_reason,
        "model_name": answer.model,
        "retrievals": answer.counts.retrievals,
        "degraded": answer.degraded,
        "sources": [p.model_dump(mode="json") for p in answer.sources],
        "gatedrag": answer.model_dump(mode="json"),
    }


class _Chunker:
    """Turns one answer's events into message chunks: one per accepted sentence, the closed-book
    draft's held back until it is kept, and the answer-level chunk at the end."""

    def __init__(self) -> None:
        self.roles: dict[int, str | None] = {}
        self.held: list[SentenceAccepted] = []
        self.events: list[Event] = []
        self.started = False

    def __call__(self, question: str, event: Event) -> list[AIMessageChunk]:
        self.events.append(event)
        if isinstance(event, SentenceProposed):
            self.roles[event.sentence] = event.role
        elif isinstance(event, SentenceAccepted):
            if self.roles.get(event.sentence) == "draft":
                self.held.append(event)
                return []
            return [*self._flush(), self._chunk(event)]
        elif isinstance(event, DraftDiscarded):
            self.held = []
        elif isinstance(event, Finished):
            answer = Answer.from_events(question, self.events)
            return [*self._flush(), AIMessageChunk(content="", response_metadata=_answer_metadata(answer))]
        return []

    def _flush(self) -> list[AIMessageChunk]:
        held, self.held = self.held, []
        return [self._chunk(e) for e in held]

    def _chunk(self, event: SentenceAccepted) -> AIMessageChunk:
        text = event.text if not self.started else " " + event.text
        self.started = True
        return AIMessageChunk(content=text, response_metadata={"sentences": [_sentence_entry(event)]})


def to_message(answer: Answer) -> AIMessage:
    """The answer as the ``AIMessage`` :class:`GatedRAGRunnable` returns (what its stream adds up to)."""
    chunker = _Chunker()
    total = AIMessageChunk(content="")
    for event in answer.events:
        for chunk in chunker(answer.question, event):
            total = total + chunk
    return AIMessage(content=answer.text, response_metadata=total.response_metadata)


def answer_of(message: BaseMessage) -> Answer:
    """The gatedrag :class:`~gatedrag.events.Answer` (trace included) behind a message the runnable returned."""
    data = message.response_metadata.get("gatedrag") if isinstance(message, BaseMessage) else None
    if data is None:
        raise InputError("this message was not written by GatedRAGRunnable (no 'gatedrag' in response_metadata)")
    return Answer.model_validate(data)


# -- what a run reports ----------------------------------------------------------------------------
def _found(event: Retrieved) -> tuple[RetrievalError | None, list[Document]]:
    """How a retrieval's child run ends: with its error (nothing found) or its documents."""
    if event.error and not event.passages:
        return RetrievalError(event.error), []
    return None, [to_document(p) for p in event.passages]


class _Reporter:
    """Reports one answer's events to its run: a custom event each, a retriever run a retrieval."""

    def __init__(self, run_manager: CallbackManagerForChainRun, config: RunnableConfig, retriever: str):
        self.run_manager, self.config, self.retriever = run_manager, config, retriever
        self.open: CallbackManagerForRetrieverRun | None = None

    def __call__(self, event: Event) -> None:
        dispatch_custom_event(EVENT_PREFIX + event.type, event.model_dump(mode="json"), config=self.config)
        if isinstance(event, RetrievalStarted):
            self.open = self.run_manager.get_child().on_retriever_start(
                {"name": self.retriever},
                " | ".join(event.queries),
                name=self.retriever,
            )
        elif isinstance(event, Retrieved) and self.open is not None:
            run, self.open = self.open, None
            failed, docs = _found(event)
            if failed is not None:
                run.on_retriever_error(failed)
            else:
                run.on_retriever_end(docs)


class _AsyncReporter:
    """:class:`_Reporter` for async runs."""

    def __init__(self, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig, retriever: str):
        self.run_manager, self.config, self.retriever = run_manager, config, retriever
        self.open: AsyncCallbackManagerForRetrieverRun | None = None

    async def __call__(self, event: Event) -> None:
        await adispatch_custom_event(EVENT_PREFIX + event.type, event.model_dump(mode="json"), config=self.config)
        if isinstance(event, RetrievalStarted):
            self.open = await self.run_manager.get_child().on_retriever_start(
                {"name": self.retriever},
                " | ".join(event.queries),
                name=self.retriever,
            )
        elif isinstance(event, Retrieved) and self.open is not None:
            run, self.open = self.open, None
            failed, docs = _found(event)
            if failed is not None:
                await run.on_retriever_error(failed)
            else:
                await run.on_retriever_end(docs)


def _plan(inputs: Sequence[Any], configs: Sequence[RunnableConfig]) -> tuple[list[Any], list[list[tuple[int, Parsed]]]]:
    """A batch's inputs parsed: the outputs with each bad input's :class:`InputError` in its place,
    and the good ones, with their positions, in groups of ``max_concurrency``."""
    out: list[Any] = []
    good: list[tuple[int, Parsed]] = []
    for i, value in enumerate(inputs):
        try:
            good.append((i, parse_input(value)))
            out.append(None)
        except InputError as err:
            out.append(err)
    limit = configs[0].get("max_concurrency") or len(inputs)
    return out, [good[lo : lo + limit] for lo in range(0, len(good), limit)]


def _aggregate(chunks: Sequence[Any]) -> Any:
    """Input chunks added up (a stream of one input is that input)."""
    total = None
    for c in chunks:
        total = c if total is None else total + c
    return total


# -- the runnable ----------------------------------------------------------------------------------
class GatedRAGRunnable(RunnableSerializable[Any, AIMessage]):
    """gatedrag's gated answering as a LangChain Runnable (see the module's docstring).

    ``pipeline`` is the gatedrag config (model, retrieval, gate, policy); the pipeline is built from
    it on first use, or given with :meth:`from_rag`; :meth:`from_config` takes a LangChain
    retriever or vector store to retrieve from instead of the configured corpus.

    Example:
        >>> from gatedrag.connectors.langchain import GatedRAGRunnable
        >>> from gatedrag.pipeline import GatedRAG
        >>> from helpers.scripted import ScriptedLM
        >>> gated = GatedRAGRunnable.from_rag(GatedRAG(ScriptedLM([("It is Paris.", 0.9)], []), None))
        >>> [c.content for c in gated.stream("Capital of France?")]
        ['It is Paris.', '']
        >>> [m.content for m in gated.batch(["Capital of France?", "And of Italy?"])]
        ['It is Paris.', 'It is Paris.']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    """The gatedrag config the pipeline is built from."""
    _rag: GatedRAG | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_rag(cls, rag: GatedRAG, **fields: Any) -> GatedRAGRunnable:
        """Wrap a pipeline that is already built (its config becomes ``pipeline``)."""
        if not isinstance(rag, GatedRAG):
            raise InputError(f"not a GatedRAG pipeline: {type(rag).__name__}")
        out = cls(pipeline=rag.config, **fields)
        out._rag = rag
        return out

    @classmethod
    def from_config(
        cls,
        config: PipelineConfig | None = None,
        *,
        retriever: BaseRetriever | VectorStore | Retriever | None = None,
        progress: Callable[[str], None] | None = None,
        **fields: Any,
    ) -> GatedRAGRunnable:
        """Build the pipeline of ``config`` (default: the embedded defaults); ``retriever`` (a
        LangChain retriever or vector store, or a gatedrag retriever) replaces the configured one."""
        from gatedrag.factory import build_components, build_rag, resolve_backend, with_backend

        config = config or PipelineConfig()
        config = with_backend(config, resolve_backend(config))
        parts = build_components(config, progress=progress)
        if retriever is not None:
            if isinstance(retriever, BaseRetriever | VectorStore):
                retriever = LangChainRetriever(retriever)
            if not isinstance(retriever, Retriever):
                raise InputError(f"not a retriever: {type(retriever).__name__}")
            parts.retriever = retriever
        return cls.from_rag(build_rag(config, parts), **fields)

    @property
    def rag(self) -> GatedRAG:
        """The pipeline (built from ``pipeline`` on first use)."""
        if self._rag is None:
            with self._lock:
                if self._rag is None:
                    self._rag = GatedRAG.from_config(self.pipeline)
        return self._rag

    @property
    def _retriever_name(self) -> str:
        r = self.rag.retriever
        return "retriever" if r is None else str(r.name)

    # -- sync -------------------------------------------------------------------------------------
    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        return self._call_with_config(self._invoke, input, ensure_config(config), run_type="chain", **kwargs)

    def _invoke(self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> AIMessage:
        question, passages = parse_input(value)
        rag = self.rag
        report = _Reporter(run_manager, config, self._retriever_name)
        with self._lock:
            answer = rag.ask(question, passages=passages, on_event=lambda _, e: report(e))
        return to_message(answer)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        if not inputs:
            return []
        return self._batch_with_config(
            self._batch, inputs, config, return_exceptions=return_exceptions, run_type="chain", **kwargs
        )

    def _batch(
        self, inputs: list[Any], run_manager: list[CallbackManagerForChainRun], config: list[RunnableConfig]
    ) -> list[AIMessage | Exception]:
        out, groups = _plan(inputs, config)
        rag = self.rag
        reporters = [_Reporter(m, c, self._retriever_name) for m, c in zip(run_manager, config)]
        with self._lock:
            for group in groups:
                where = [i for i, _ in group]
                try:
                    answers = rag.batch(
                        [q for _, (q, _) in group],
                        passages=[p for _, (_, p) in group],
                        on_event=lambda j, e, where=where: reporters[where[j]](e),
                    )
                except Exception as err:  # the pipeline failed: every answer of the group did
                    answers = [err] * len(group)
                for i, answer in zip(where, answers):
                    out[i] = answer if isinstance(answer, Exception) else to_message(answer)
        return out

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        yield from self._transform_stream_with_config(
            iter([input]), self._stream, ensure_config(config), run_type="chain", **kwargs
        )

    def transform(
        self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        yield from self._transform_stream_with_config(
            input, self._stream, ensure_config(config), run_type="chain", **kwargs
        )

    def _stream(
        self, inputs: Iterator[Any], run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Iterator[AIMessageChunk]:
        question, passages = parse_input(_aggregate(list(inputs)))
        rag = self.rag
        report, chunker = _Reporter(run_manager, config, self._retriever_name), _Chunker()
        with self._lock:
            for event in rag.stream(question, passages=passages):
                report(event)
                yield from chunker(question, event)

    # -- async ------------------------------------------------------------------------------------
    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        return await self._acall_with_config(self._ainvoke, input, ensure_config(config), run_type="chain", **kwargs)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AIMessage:
        parsed = parse_input(value)
        return (await self._aanswer([parsed], [_AsyncReporter(run_manager, config, self._retriever_name)]))[0]

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        if not inputs:
            return []
        return await self._abatch_with_config(
            self._abatch, inputs, config, return_exceptions=return_exceptions, run_type="chain", **kwargs
        )

    async def _abatch(
        self, inputs: list[Any], run_manager: list[AsyncCallbackManagerForChainRun], config: list[RunnableConfig]
    ) -> list[AIMessage | Exception]:
        out, groups = _plan(inputs, config)
        for group in groups:
            where = [i for i, _ in group]
            reporters = [_AsyncReporter(run_manager[i], config[i], self._retriever_name) for i in where]
            try:
                got: list[AIMessage | Exception] = list(await self._aanswer([p for _, p in group], reporters))
            except Exception as err:
                got = [err] * len(group)
            for i, message in zip(where, got):
                out[i] = message
        return out

    async def _aanswer(self, parsed: list[Parsed], reporters: list[_AsyncReporter]) -> list[AIMessage]:
        """Answer ``parsed`` together in a worker thread; their events are reported on the event
        loop as they are emitted."""
        rag = self.rag
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, Event] | None] = asyncio.Queue()

        def on_event(i: int, event: Event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (i, event))

        def work() -> list[Answer]:
            with self._lock:
                try:
                    return rag.batch([q for q, _ in parsed], passages=[p for _, p in parsed], on_event=on_event)
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        task = asyncio.ensure_future(asyncio.to_thread(work))
        while (item := await queue.get()) is not None:
            await reporters[item[0]](item[1])
        return [to_message(a) for a in await task]

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(one(), config, **kwargs):
            yield chunk

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        async for chunk in self._atransform_stream_with_config(
            input, self._astream, ensure_config(config), run_type="chain", **kwargs
        ):
            yield chunk

    async def _astream(
        self, inputs: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[AIMessageChunk]:
        question, passages = parse_input(_aggregate([c async for c in inputs]))
        rag = self.rag
        report, chunker = _AsyncReporter(run_manager, config, self._retriever_name), _Chunker()
        await asyncio.to_thread(self._lock.acquire)
        try:
            async for event in rag.astream(question, passages=passages):
                await report(event)
                for chunk in chunker(question, event):
                    yield chunk
        finally:
            self._lock.release()


__all__ = ["EVENT_PREFIX", "GatedRAGRunnable", "answer_of", "parse_input", "to_message"]
