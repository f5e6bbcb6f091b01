"""Many callers, one model: a worker thread that runs the gated pipeline continuously and batches
the turns of concurrent callers (chat sessions, server requests) onto the model.

Turns wait in a bounded queue (a turn beyond ``max_pending`` is refused at once with
:class:`~gatedrag.errors.SchedulerBusy`, never left hanging). The worker decodes up to
``decoding.batch_size`` turns together; a turn that arrives while others are being written joins
them at their next sentence boundary (continuous batching: the rows pause there, the newcomer
starts, all go on together), and each answer is delivered the moment it is finished. A turn can be
cancelled (queued, it is dropped; running, its row ends at its next sentence boundary and is freed
for the next turn) and can carry a deadline (queued past it: :class:`~gatedrag.errors.DeadlineExceeded`;
running past it: the answer ends with what it has, ``finish_reason="deadline"``, labelled in the
trace). A turn whose processing raises fails alone; the others go on. With greedy decoding an
answer is the one the pipeline gives the question alone (the backend's batched rows equal rows
decoded one at a time; the cost counter ``llm_calls`` counts the decoding rounds a row took part
in, so it can differ).

Work that needs the model outside a turn (a chat's condense step) runs on the worker between
decoding rounds (:meth:`Scheduler.call`), so the model is only ever used from one thread.

Example:
    >>> from gatedrag.pipeline import GatedRAG
    >>> from gatedrag.scheduler import Scheduler
    >>> from helpers.scripted import ScriptedLM
    >>> rag = GatedRAG(ScriptedLM([("So the answer is Paris.", 0.9)], []), None)
    >>> with Scheduler(rag) as scheduler:
    ...     tickets = [scheduler.submit(q) for q in ("Capital of France?", "Where is the Louvre?")]
    ...     [t.result(timeout=10).answer for t in tickets]
    ['Paris', 'Paris']
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gatedrag.aio import iterate_in_thread
from gatedrag.errors import DeadlineExceeded, InputError, SchedulerBusy, SchedulerClosed, TurnCancelled
from gatedrag.events import Answer, Event
from gatedrag.lm.base import LanguageModel
from gatedrag.pipeline import Admission, EventCallback, GatedRAG, StopReason, validate_passages, validate_question
from gatedrag.types import Passage

T = TypeVar("T")


class Ticket:
    """A submitted turn: its answer to come (:meth:`result`), :meth:`cancel`, and its state."""

    def __init__(self, key: int, question: str, deadline: float | None) -> None:
        self.key = key
        self.question = question
        self.deadline = deadline
        """``time.monotonic()`` past which the turn stops (``None``: none)."""
        self.future: concurrent.futures.Future[Answer] = concurrent.futures.Future()
        self.submitted = time.monotonic()
        self.started: float | None = None
        """When the turn got a row (``time.monotonic()``); ``None`` while queued."""
        self._cancel = threading.Event()
        self._on_cancel: Callable[[Ticket], None] | None = None

    def result(self, timeout: float | None = None) -> Answer:
        """The answer (waits for it). Raises :class:`~gatedrag.errors.TurnCancelled`,
        :class:`~gatedrag.errors.DeadlineExceeded` or the error that ended the turn;
        ``TimeoutError`` if ``timeout`` seconds pass first (the turn goes on)."""
        return self.future.result(timeout)

    def cancel(self) -> bool:
        """Stop the turn: queued, it never starts; running, its row ends at its next sentence
        boundary and is freed. ``False`` if it had already finished."""
        if self.future.done():
            return False
        self._cancel.set()
        if self._on_cancel is not None:
            self._on_cancel(self)
        return True

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def done(self) -> bool:
        return self.future.done()

    def _stop_reason(self, now: float) -> StopReason | None:
        if self._cancel.is_set():
            return "cancelled"
        if self.deadline is not None and now >= self.deadline:
            return "deadline"
        return None


@dataclass
class _Turn:
    ticket: Ticket
    passages: list[Passage] | None
    on_event: EventCallback | None


@dataclass
class _Call:
    fn: Callable[[LanguageModel], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class Scheduler:
    """Runs ``rag`` on a worker thread for every caller (see the module doc). ``max_pending``:
    turns that may wait for a row; ``deadline_s``: the default deadline of a turn (seconds from
    its submission; ``None``: none); ``batch_window_s``: with no turn running, how long the worker
    waits after a turn arrives for others to start with it (turns arriving together are decoded
    together from their first token, instead of joining at the first one's first sentence). The scheduler owns ``rag`` while it runs: use it only through
    the scheduler. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self, rag: GatedRAG, *, max_pending: int = 32, deadline_s: float | None = None, batch_window_s: float = 0.05
    ) -> None:
        if max_pending < 1:
            raise InputError("max_pending must be at least 1")
        if batch_window_s < 0:
            raise InputError("batch_window_s must be 0 or more")
        if deadline_s is not None and deadline_s <= 0:
            raise InputError("deadline_s must be positive (or None for no deadline)")
        self.rag = rag
        self.max_pending = max_pending
        self.deadline_s = deadline_s
        self.batch_window_s = batch_window_s
        self._cv = threading.Condition()
        self._queue: deque[_Turn] = deque()
        self._calls: deque[_Call] = deque()
        self._running: dict[Hashable, _Turn] = {}
        self._keys = itertools.count()
        self._closed = False
        self.occupancy: list[int] = []
        """How many turns were running after each admission (what the benchmarks read)."""
        self._worker = threading.Thread(target=self._work, name="gatedrag-scheduler", daemon=True)
        self._worker.start()

    # -- callers ------------------------------------------------------------------------------------
    def submit(
        self,
        question: str,
        *,
        passages: Sequence[Passage] | None = None,
        on_event: EventCallback | None = None,
        deadline_s: float | None = None,
    ) -> Ticket:
        """Queue a turn; ``on_event(key, event)`` is called (on the worker thread) as each of its
        events is emitted. ``deadline_s`` overrides the scheduler's default."""
        question = validate_question(question)
        given = None if passages is None else validate_passages(passages)
        limit = deadline_s if deadline_s is not None else self.deadline_s
        if limit is not None and limit <= 0:
            raise InputError("deadline_s must be positive")
        with self._cv:
            if self._closed:
                raise SchedulerClosed("the scheduler is closed: create a new one")
            if len(self._queue) >= self.max_pending:
                raise SchedulerBusy(
                    f"{len(self._queue)} turns are already waiting (max_pending={self.max_pending}): try again later"
                )
            ticket = Ticket(next(self._keys), question, None if limit is None else time.monotonic() + limit)
            ticket._on_cancel = self._cancel_queued
            self._queue.append(_Turn(ticket, given, on_event))
            self._cv.notify_all()
        return ticket

    def ask(
        self, question: str, *, passages: Sequence[Passage] | None = None, deadline_s: float | None = None
    ) -> Answer:
        """Submit a turn and wait for its answer."""
        return self.submit(question, passages=passages, deadline_s=deadline_s).result()

    async def aask(
        self, question: str, *, passages: Sequence[Passage] | None = None, deadline_s: float | None = None
    ) -> Answer:
        """:meth:`ask` for asyncio (the event loop stays free; a cancelled task cancels the turn)."""
        ticket = self.submit(question, passages=passages, deadline_s=deadline_s)
        try:
            return await asyncio.wrap_future(ticket.future)
        except asyncio.CancelledError:
            ticket.cancel()
            raise

    def stream(
        self, question: str, *, passages: Sequence[Passage] | None = None, deadline_s: float | None = None
    ) -> Generator[Event, None, None]:
        """The turn's events as they are emitted (the last is ``finished``). Closing the iterator
        early cancels the turn."""
        events: queue.Queue[Event | None] = queue.Queue()
        ticket = self.submit(question, passages=passages, on_event=lambda _, e: events.put(e), deadline_s=deadline_s)
        ticket.future.add_done_callback(lambda _: events.put(None))  # after the turn's last event
        try:
            while (event := events.get()) is not None:
                yield event
            ticket.result()  # raises what ended the turn, if it did not finish
        finally:
            ticket.cancel()

    async def astream(
        self, question: str, *, passages: Sequence[Passage] | None = None, deadline_s: float | None = None
    ) -> AsyncIterator[Event]:
        """:meth:`stream` as an async iterator."""
        async for event in iterate_in_thread(self.stream(question, passages=passages, deadline_s=deadline_s)):
            yield event

    def call(self, fn: Callable[[LanguageModel], T], *, timeout: float | None = None) -> T:
        """Run ``fn(model)`` on the worker between decoding rounds and return what it returns
        (what needs the model outside a turn, e.g. a chat's condense step)."""
        item = _Call(fn)
        with self._cv:
            if self._closed:
                raise SchedulerClosed("the scheduler is closed: create a new one")
            self._calls.append(item)
            self._cv.notify_all()
        return item.future.result(timeout)

    def pending(self) -> int:
        """Turns waiting for a row."""
        with self._cv:
            return len(self._queue)

    def running(self) -> int:
        """Turns being written."""
        with self._cv:
            return len(self._running)

    def close(self, *, timeout: float | None = 60.0) -> None:
        """Take no new turns, let the queued and running ones finish, stop the worker."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._worker.join(timeout)

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker: the pipeline's intake ----------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                self.rag.run(self)
            except BaseException as err:  # a failure outside any one row: fail the running turns, go on
                with self._cv:
                    running, self._running = list(self._running.values()), {}
                for turn in running:
                    if not turn.ticket.future.done():
                        turn.ticket.future.set_exception(err)
            with self._cv:
                if self._closed and not self._queue and not self._calls:
                    return

    def take(self, room: int, *, block: bool) -> list[Admission]:
        while True:
            self._serve_calls()
            with self._cv:
                if block and self._queue and self.batch_window_s:  # idle: let turns arriving together start together
                    until = time.monotonic() + self.batch_window_s
                    while len(self._queue) < room and not self._closed and (left := until - time.monotonic()) > 0:
                        self._cv.wait(left)
                taken = self._pop_turns(room)
                if taken or not block or (self._closed and not self._queue and not self._calls):
                    break
                if not self._queue and not self._calls:
                    self._cv.wait()
        return [
            Admission(key=t.ticket.key, question=t.ticket.question, passages=t.passages, on_event=t.on_event)
            for t in taken
        ]

    def _pop_turns(self, room: int) -> list[_Turn]:
        """Up to ``room`` queued turns, now running; the queued ones cancelled or past their
        deadline are answered with the error that says so (called holding the lock)."""
        now = time.monotonic()
        taken: list[_Turn] = []
        for turn in list(self._queue):
            reason = turn.ticket._stop_reason(now)
            if reason is None and len(taken) >= room:
                continue
            self._queue.remove(turn)
            if reason == "cancelled":
                turn.ticket.future.set_exception(TurnCancelled("the turn was cancelled before it started"))
            elif reason == "deadline":
                waited = now - turn.ticket.submitted
                turn.ticket.future.set_exception(
                    DeadlineExceeded(f"the turn waited {waited:.1f} s for a row, past its deadline: retry it later")
                )
            else:
                turn.ticket.started = now
                self._running[turn.ticket.key] = turn
                taken.append(turn)
        if taken:
            self.occupancy.append(len(self._running))
        return taken

    def _cancel_queued(self, ticket: Ticket) -> None:
        """A queued turn that is cancelled is answered at once (a running one ends at its next sentence)."""
        with self._cv:
            for turn in self._queue:
                if turn.ticket is ticket:
                    self._queue.remove(turn)
                    ticket.future.set_exception(TurnCancelled("the turn was cancelled before it started"))
                    return

    def waiting(self, room: int) -> bool:
        return bool(self._calls) or (room > 0 and bool(self._queue))

    def stop_reason(self, key: Hashable) -> StopReason | None:
        turn = self._running.get(key)
        return None if turn is None else turn.ticket._stop_reason(time.monotonic())

    def time_left(self, key: Hashable) -> float | None:
        turn = self._running.get(key)
        if turn is None or turn.ticket.deadline is None:
            return None
        return turn.ticket.deadline - time.monotonic()

    def deliver(self, key: Hashable, answer: Answer) -> None:
        with self._cv:
            turn = self._running.pop(key, None)
        if turn is not None:
            turn.ticket.future.set_result(answer)

    def fail(self, key: Hashable, error: BaseException) -> None:
        with self._cv:
            turn = self._running.pop(key, None)
        if turn is not None:
            turn.ticket.future.set_exception(error)

    def _serve_calls(self) -> None:
        while True:
            with self._cv:
                if not self._calls:
                    return
                item = self._calls.popleft()
            try:
                item.future.set_result(item.fn(self.rag.lm))
            except BaseException as err:
                item.future.set_exception(err)


__all__ = ["Scheduler", "Ticket"]
