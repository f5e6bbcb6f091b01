"""One model, many requests: a worker thread that batches waiting completions onto the model.

Greedy requests with the same stop strings are decoded together (up to ``max_batch`` rows, each
with its own token budget; the worker waits ``batch_window_s`` after the first request for others
to join, so that clients arriving together are decoded together); a sampled request runs alone, so that its ``seed`` gives the same text
however busy the server is. The queue is bounded: a request beyond ``max_pending`` is refused at
once (:class:`EngineBusy`), never left waiting.

Example:
    >>> from gatedrag.serve.engine import Engine, Job
    >>> from helpers.scripted import ScriptedLM
    >>> engine = Engine(ScriptedLM([("Paris.", 0.9)], []))
    >>> engine.submit(Job(prompt="Capital of France?", max_tokens=8)).result().text
    'Paris.'
    >>> engine.close()
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gatedrag.errors import GatedRAGError
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.chat import Completion, complete
from gatedrag.lm.sampling import Sampling
from gatedrag.types import Sentence


class EngineBusy(GatedRAGError):
    """Too many requests are waiting: try again later."""


@dataclass
class Job:
    """One completion: its prompt, budget, stop strings, sampling (``None``: greedy) and, for a
    streamed request, what to tell each piece of text as it is written."""

    prompt: str
    max_tokens: int
    stop: tuple[str, ...] = ()
    sampling: Sampling | None = None
    on_piece: Callable[[Sentence], None] | None = None
    future: concurrent.futures.Future[Completion] = field(default_factory=concurrent.futures.Future)
    abandoned: threading.Event = field(default_factory=threading.Event)
    """Set when nobody waits for the rest (a streaming client left): the row ends at its next piece."""


class Engine:
    """Decodes submitted jobs on ``lm`` in a worker thread (see the module doc)."""

    def __init__(self, lm: LanguageModel, *, max_batch: int = 8, max_pending: int = 64, batch_window_s: float = 0.05):
        self.lm = lm
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_pending)
        self._held: list[Job] = []  # taken from the queue, not batchable with the last batch
        self.batches: list[int] = []
        """The size of every batch decoded (what the benchmarks read)."""
        self._worker = threading.Thread(target=self._run, name="gatedrag-serve-engine", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> concurrent.futures.Future[Completion]:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise EngineBusy(f"{self._queue.maxsize} requests are already waiting") from None
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _next_batch(self) -> list[Job] | None:
        first = self._held.pop(0) if self._held else self._queue.get()
        if first is None:
            return None
        batch = [first]
        if first.sampling is not None:
            return batch
        deadline = time.monotonic() + self.batch_window_s
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            if job.sampling is None and job.stop == first.stop:
                batch.append(job)
            else:
                self._held.append(job)
        return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            self.batches.append(len(batch))

            def piece(i: int, sentence: Sentence, batch: list[Job] = batch) -> None:
                if batch[i].on_piece is not None:
                    batch[i].on_piece(sentence)

            try:
                done = complete(
                    self.lm,
                    [j.prompt for j in batch],
                    max_tokens=[j.max_tokens for j in batch],
                    stop=batch[0].stop,
                    sampling=batch[0].sampling,
                    on_segment=piece,
                    stopped=lambda i, batch=batch: batch[i].abandoned.is_set(),
                )
            except Exception as err:  # the request fails, the server goes on
                for j in batch:
                    j.future.set_exception(err)
                continue
            for j, c in zip(batch, done):
                j.future.set_result(c)


__all__ = ["Engine", "EngineBusy", "Job"]
