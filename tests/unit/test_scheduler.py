"""The shared scheduler: concurrent turns (threads, asyncio) answered as alone, continuous batching at
sentence boundaries, cancellation, deadlines, a full queue, a failing turn that fails alone."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from helpers.scripted import ScriptedLM

from gatedrag.config import DecodingConfig, GateConfig, PipelineConfig, PolicyConfig, TokenRAGRule
from gatedrag.errors import (
    ContextLengthError,
    DeadlineExceeded,
    InputError,
    SchedulerBusy,
    SchedulerClosed,
    TurnCancelled,
)
from gatedrag.events import Answer, Finished, SentenceAccepted
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.scheduler import Scheduler
from gatedrag.types import Passage

PASSAGES = [Passage(id=str(i), title=f"T{i}", text=f"word{i} alpha beta gamma delta") for i in range(8)]
QUESTIONS = ["alpha word1?", "beta word2 and more?", "gamma?", "delta word4?", "word5 alpha?", "what of word6?"]


def config(batch_size: int = 4, max_answer_tokens: int = 40, threshold: float = 0.0) -> PipelineConfig:
    return PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=threshold)]),  # 0: a random model always retrieves; 1: never
        decoding=DecodingConfig(max_answer_tokens=max_answer_tokens, max_sentence_tokens=6, batch_size=batch_size),
        policy=PolicyConfig(max_retrievals=2),
    )


def outcome(answer: Answer) -> tuple:
    """What a turn must have whatever else was decoded with it (not its timings or round count)."""
    events = [(e.type, getattr(e, "text", None), getattr(e, "query", None)) for e in answer.events]
    return answer.text, answer.answer, answer.finish_reason, answer.counts.retrievals, events


@pytest.fixture(scope="module", params=[0.0, 1.0], ids=["retrieving", "never-retrieving"])
def rag(tiny_lm, request):
    """Rows that stop for retrievals, and rows that decode their whole answer in one round (a
    newcomer joins them only because they pause at a sentence boundary)."""
    return GatedRAG(tiny_lm, BM25Retriever.build(PASSAGES), config(threshold=request.param))


@pytest.fixture(scope="module")
def serial(rag):
    return {q: outcome(rag.ask(q)) for q in QUESTIONS}


def test_concurrent_turns_from_threads_join_at_sentence_boundaries_and_equal_serial(rag, serial):
    order: list[tuple[int, str]] = []
    lock = threading.Lock()

    def note(key, event):
        with lock:
            order.append((key, event.type))

    with Scheduler(rag) as scheduler:
        first = scheduler.submit(QUESTIONS[0], on_event=note)
        while not any(k == first.key and t == "sentence_accepted" for k, t in list(order)):
            time.sleep(0.001)  # the first turn is mid-answer when the others arrive
        tickets: dict[str, object] = {QUESTIONS[0]: first}
        threads = [
            threading.Thread(target=lambda q=q: tickets.__setitem__(q, scheduler.submit(q, on_event=note)))
            for q in QUESTIONS[1:]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = {q: outcome(t.result(timeout=120)) for q, t in tickets.items()}  # type: ignore[attr-defined]
        assert max(scheduler.occupancy) > 1  # decoded together
    assert got == serial
    finished_first = order.index((first.key, "finished"))
    assert any(k != first.key for k, _ in order[:finished_first])  # a newcomer joined before the first ended


def test_asyncio_callers_get_serial_answers_and_the_loop_stays_free(rag, serial):
    async def main():
        ticks = 0

        async def clock():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        timer = asyncio.create_task(clock())
        with Scheduler(rag) as scheduler:
            answers = await asyncio.gather(*(scheduler.aask(q) for q in QUESTIONS))
            streamed = [e async for e in scheduler.astream(QUESTIONS[2])]
        timer.cancel()
        return answers, streamed, ticks

    answers, streamed, ticks = asyncio.run(main())
    assert [outcome(a) for a in answers] == [serial[q] for q in QUESTIONS]
    assert (
        isinstance(streamed[-1], Finished)
        and outcome(Answer.from_events(QUESTIONS[2], streamed)) == serial[QUESTIONS[2]]
    )
    assert ticks > 10


def test_cancelling_a_running_turn_frees_its_row_for_the_next(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config(batch_size=1, max_answer_tokens=200))
    started = threading.Event()
    with Scheduler(rag) as scheduler:
        running = scheduler.submit("a long one?", on_event=lambda k, e: started.set())
        waiting = scheduler.submit("the next one?")
        assert started.wait(30)
        assert scheduler.running() == 1 and scheduler.pending() == 1
        assert running.cancel()
        with pytest.raises(TurnCancelled):
            running.result(timeout=60)
        assert waiting.result(timeout=120).question == "the next one?"
        queued = [scheduler.submit("queued?") for _ in range(3)]
        assert queued[-1].cancel()
        with pytest.raises(TurnCancelled):  # a queued turn is answered at once, without waiting for a row
            queued[-1].result(timeout=0.5)
        assert all(t.result(timeout=120).question == "queued?" for t in queued[:-1])
        done = queued[0]
        assert not done.cancel()  # finished: nothing to cancel


def test_a_turn_past_its_deadline_ends_with_what_it_has_and_a_queued_one_is_refused(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config(batch_size=1, max_answer_tokens=400))
    with Scheduler(rag) as scheduler:
        late = scheduler.submit("slow?", deadline_s=0.3)
        behind = scheduler.submit("behind it?", deadline_s=0.2)
        answer = late.result(timeout=60)
        assert answer.finish_reason == "deadline" and answer.counts.generated_tokens < 400
        assert any(e.type == "degraded" and e.what == "deadline" for e in answer.events)
        with pytest.raises(DeadlineExceeded, match="waited"):
            behind.result(timeout=60)
    plain = GatedRAG(tiny_lm, None, config(max_answer_tokens=400)).ask("slow?", deadline_s=0.2)
    assert plain.finish_reason == "deadline"


def test_a_full_queue_bad_input_and_a_closed_scheduler_are_refused(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config(batch_size=1, max_answer_tokens=200))
    scheduler = Scheduler(rag, max_pending=2)
    started = threading.Event()
    first = scheduler.submit("one?", on_event=lambda k, e: started.set())
    assert started.wait(30)
    queued = [scheduler.submit("two?"), scheduler.submit("three?")]
    with pytest.raises(SchedulerBusy, match="max_pending=2"):
        scheduler.submit("four?")
    for bad in ("", "   ", 3, None):
        with pytest.raises(InputError):
            scheduler.submit(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        scheduler.submit("fine?", deadline_s=-1)
    for t in (first, *queued):
        t.cancel()
    scheduler.close()
    with pytest.raises(SchedulerClosed):
        scheduler.submit("five?")
    with pytest.raises(InputError):
        Scheduler(rag, max_pending=0)


def test_a_turn_that_fails_fails_alone(rag, serial):
    with Scheduler(rag) as scheduler:
        too_long = scheduler.submit("x" * 5000 + "?")  # longer than the model's context, with nothing to drop
        fine = [scheduler.submit(q) for q in QUESTIONS[:3]]
        with pytest.raises(ContextLengthError):
            too_long.result(timeout=60)
        assert [outcome(t.result(timeout=120)) for t in fine] == [serial[q] for q in QUESTIONS[:3]]


def test_streaming_order_is_the_trace_and_closing_the_stream_cancels_the_turn(tiny_lm):
    rag = GatedRAG(tiny_lm, None, config(batch_size=2, max_answer_tokens=200))
    with Scheduler(rag) as scheduler:
        events = list(scheduler.stream("whole?"))
        assert isinstance(events[-1], Finished)
        assert Answer.from_events("whole?", events).events == events
        stream = scheduler.stream("left early?")
        assert next(e for e in stream if isinstance(e, SentenceAccepted))
        stream.close()
        deadline = time.monotonic() + 30
        while scheduler.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scheduler.running() == 0


def test_model_work_between_rounds_runs_on_the_worker():
    lm = ScriptedLM([("So the answer is Paris.", 0.9)], [])
    rag = GatedRAG(lm, None)
    with Scheduler(rag) as scheduler:
        name = scheduler.call(lambda model: (model.name, threading.current_thread().name))
        assert name == (lm.name, "gatedrag-scheduler")
        with pytest.raises(ZeroDivisionError):
            scheduler.call(lambda model: 1 / 0)
        assert scheduler.ask("Capital of France?").answer == "Paris"  # the worker goes on


def test_turns_arriving_together_start_together():
    rag = GatedRAG(ScriptedLM([("So the answer is Paris.", 0.9)], []), None)
    with Scheduler(rag, batch_window_s=0.5) as scheduler:
        tickets = [scheduler.submit(f"Question {i}?") for i in range(4)]
        assert [t.result(timeout=10).answer for t in tickets] == ["Paris"] * 4
        assert scheduler.occupancy[0] == 4  # one admission of all four, not one then three
    with Scheduler(rag, batch_window_s=0) as scheduler:
        assert scheduler.ask("Alone?").answer == "Paris"
    with pytest.raises(InputError):
        Scheduler(rag, batch_window_s=-1)
