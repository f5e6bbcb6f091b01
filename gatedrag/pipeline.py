"""The controller: executes the policy's actions for a batch of answers and emits their events.

:class:`GatedRAG` answers questions sentence by sentence with a real language model. Each finished
sentence is scored by the gate's signals (read from the token distributions the model already
produced) and the :class:`~gatedrag.gate.Policy` returns one action for it: accept it, retrieve
(and write it again with the passages), adjust (write it again under knowledge control) or finish.
The controller executes actions and moves each answer along the phases of
:data:`~gatedrag.gate.state.TRANSITIONS`; it never changes a decision. Questions are decoded
together in batches; everything that happens is emitted as an immutable event
(:mod:`gatedrag.events`), from which the answer's steps are derived.

Example (loads the default model; the first run assembles and converts it once)::

    from gatedrag import GatedRAG
    rag = GatedRAG.from_config()
    answer = rag.ask("Who directed the 1994 film about Ed Wood?")
    print(answer.answer, answer.counts.retrievals)
    for event in rag.stream("Who wrote Hamlet?"):   # events as they happen
        print(event.type)
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from gatedrag.aio import iterate_in_thread
from gatedrag.config import GateConfig, PipelineConfig
from gatedrag.errors import (
    BackendError,
    ConfigError,
    ContextLengthError,
    GatedRAGError,
    InputError,
    RetrievalError,
    TurnCancelled,
)
from gatedrag.events import (
    Answer,
    CandidatesScored,
    Degraded,
    DraftDiscarded,
    Event,
    Finished,
    PassagesGiven,
    PassagesTrimmed,
    QuestionChecked,
    RetrievalStarted,
    Retrieved,
    SentenceAccepted,
    SentenceDiscarded,
    SentenceProposed,
    SentenceRole,
)
from gatedrag.gate import Action, AnswerState, Gate, Phase, Policy, SignalBundle
from gatedrag.gate.combiner import Combiner
from gatedrag.gate.select import Candidate, CandidateRung, ScoredCandidate, candidate_features, choose
from gatedrag.gate.state import TRANSITIONS
from gatedrag.guard import guarded
from gatedrag.lm.base import DecodeSession, LanguageModel, SentenceVerdict, Twin, score_checked
from gatedrag.lm.sampling import Sampling
from gatedrag.lm.sentences import find_sentence_end
from gatedrag.prompts import PromptTemplate
from gatedrag.retrieval.base import Retriever, check_hits, retrieve_each
from gatedrag.retrieval.query import truncate_words
from gatedrag.retrieval.rerank import Reranker
from gatedrag.signals.base import SentenceContext
from gatedrag.signals.consistency import agreement, agreement_with
from gatedrag.signals.verify import AnswerCheck, verify_answers
from gatedrag.text import require_unicode
from gatedrag.types import (
    AnswerFinish,
    Counts,
    DecodeOutcome,
    Hit,
    Passage,
    Sentence,
    StepPassage,
    geometric_mean_probability,
)

EventCallback = Callable[[int, Event], None]
"""Called with (question's position in the batch, event) as each event is emitted."""
RetrievalOutcome = Literal["new", "same", "failed"]
ROLES: dict[Phase, SentenceRole] = {
    Phase.DRAFTING: "draft",
    Phase.REGENERATING: "regenerated",
    Phase.CONTROLLED: "controlled",
}
"""The role of a sentence written in each phase (the others: written as it came)."""
KEPT_NOTE: dict[RetrievalOutcome, str] = {
    "same": "no new passages; sentence kept",
    "failed": "retrieval unavailable; sentence kept",
    "new": "retrieval unavailable; sentence kept",  # the passages did not fit: the row could not restart
}


_MIN_BUDGET_S = 0.05
"""The least time a backend call is given when a row's deadline is (nearly) past: enough for an
index lookup, and the row stops at its next sentence boundary anyway."""

StopReason = Literal["cancelled", "deadline"]
"""Why an intake stops a row: its turn was cancelled (dropped, no answer) or its deadline passed
(it finishes with what it has, ``finish_reason="deadline"``)."""


@dataclass(frozen=True)
class Admission:
    """A question handed to :meth:`GatedRAG.run`: its key (unique among the questions running),
    the question (validated), passages given with it and the callback for its events."""

    key: Hashable
    question: str
    passages: list[Passage] | None = None
    on_event: EventCallback | None = None


class Intake(Protocol):
    """Where :meth:`GatedRAG.run` takes its questions from and delivers their answers to. Every
    method is called on the thread that runs the pipeline."""

    def take(self, room: int, *, block: bool) -> list[Admission]:
        """At most ``room`` new questions (``room`` may be 0: the intake may use the model between
        rounds, e.g. for a chat's condense step). ``block``: no row is running, wait for work;
        an empty list then means there is none left and the run ends."""
        ...

    def waiting(self, room: int) -> bool:
        """Whether the next :meth:`take` with ``room`` would get work: running rows then pause at
        their next sentence boundary so that it joins them."""
        ...

    def stop_reason(self, key: Hashable) -> StopReason | None:
        """Whether question ``key`` must stop now (asked at each of its sentence boundaries)."""
        ...

    def time_left(self, key: Hashable) -> float | None:
        """Seconds until question ``key``'s deadline (negative once past it); ``None``: no deadline.
        A backend call made for the question waits at most this long."""
        ...

    def deliver(self, key: Hashable, answer: Answer) -> None:
        """Question ``key``'s answer."""
        ...

    def fail(self, key: Hashable, error: BaseException) -> None:
        """Question ``key`` ended without an answer (cancelled, or its processing raised); raising
        here ends the whole run with that error."""
        ...


class _Fixed:
    """The intake of :meth:`GatedRAG.batch`: the questions at once, an optional deadline
    (``time.monotonic()``) for all; an error ends the batch."""

    def __init__(self, admissions: list[Admission], deadline: float | None = None) -> None:
        self._todo = admissions
        self.deadline = deadline
        self.answers: dict[Hashable, Answer] = {}

    def take(self, room: int, *, block: bool) -> list[Admission]:
        todo, self._todo = self._todo, []
        return todo

    def waiting(self, room: int) -> bool:
        return False

    def stop_reason(self, key: Hashable) -> StopReason | None:
        return "deadline" if self.deadline is not None and time.monotonic() >= self.deadline else None

    def time_left(self, key: Hashable) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def deliver(self, key: Hashable, answer: Answer) -> None:
        self.answers[key] = answer

    def fail(self, key: Hashable, error: BaseException) -> None:
        raise error


@dataclass(frozen=True)
class _Pending:
    """What a row waits for at the end of the decoding round: the doubtful or conflicted sentence
    (``None`` for a scheduled retrieval) and its number, the queries and their trigger, the phase
    the action came from (a doubtful draft is written again from its start) and the phase a
    scheduled retrieval resumes."""

    sentence: Sentence | None = None
    number: int = 0
    queries: tuple[str, ...] = ()
    trigger: str = ""
    origin: Phase = Phase.ANSWERING
    resume: Phase = Phase.ANSWERING


@dataclass(frozen=True)
class _Candidate:
    """A candidate answer and the passages it was written with (what P(True) reads)."""

    candidate: Candidate
    passages: list[Passage]


@dataclass
class _Row:
    """One answer being written: its phase, what it has accepted, its passages and its events."""

    index: int
    question: str
    phase: Phase
    on_event: EventCallback | None
    t0: float = field(default_factory=time.perf_counter)
    events: list[Event] = field(default_factory=list)
    accepted: list[Sentence] = field(default_factory=list)
    draft: list[int] = field(default_factory=list)  # numbers of the draft's sentences
    proposed: int = 0
    counts: Counts = field(default_factory=Counts)
    passages: list[Hit] | None = None
    control_on: bool = False  # knowledge control is on (from an adjustment to the next retrieval)
    segment_start: int = 0  # len(accepted_ids) when the row was last (re)started
    pending: _Pending | None = None
    finish: AnswerFinish = "answer"
    search_rounds: int = 0  # deep-search rounds spent on the sentence being written
    candidates: list[_Candidate] = field(default_factory=list)  # answer selection (policy.select)
    chosen: ScoredCandidate | None = None
    sources: dict[str, Passage] = field(default_factory=dict)  # passages cited by accepted sentences, by id
    dropped: bool = False  # ended without an answer (cancelled, or its processing raised)

    @property
    def accepted_ids(self) -> list[int]:
        return [t.token_id for s in self.accepted for t in s.tokens]

    def move(self, to: Phase) -> None:
        if to not in TRANSITIONS[self.phase]:
            raise AssertionError(f"no transition {self.phase} -> {to}")
        self.phase = to

    def emit(self, event_type: type, **fields: Any) -> Event:
        event = event_type(seq=len(self.events), **fields)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(self.index, event)
        return event

    def keep(self, sentence: Sentence, number: int, note: str | None = None) -> None:
        self.accepted.append(sentence)
        self.search_rounds = 0
        cited = [h.passage for h in self.passages or []]
        for p in cited:
            self.sources.setdefault(p.id, p)
        self.emit(
            SentenceAccepted,
            sentence=number,
            text=sentence.text,
            note=note,
            confidence=sentence.confidence,
            passages=[p.id for p in cited],
            titles=[p.title for p in cited],
        )


def build_draft_gate(config: PipelineConfig, *, corpus: Any = None, extractor: Any = None) -> Gate | None:
    """The gate that judges a closed-book draft (``config.draft``), or ``None`` without a draft."""
    if config.draft is None:
        return None
    return Gate(GateConfig(rules=config.draft.rules, combine=config.draft.combine), corpus=corpus, extractor=extractor)


def validate_question(question: object) -> str:
    """Return the stripped question or raise :class:`InputError`."""
    if not isinstance(question, str):
        raise InputError(f"a question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise InputError("the question is empty: ask something")
    return require_unicode(question.strip(), "the question")


def validate_passages(passages: object, what: str = "passages") -> list[Passage]:
    """Passages given with a question, as :class:`Passage` objects (dicts with ``id``, ``title``,
    ``text`` are accepted); anything else raises :class:`InputError`."""
    if isinstance(passages, str | bytes) or not isinstance(passages, Sequence):
        raise InputError(f"{what} must be a list of passages, got {type(passages).__name__}")
    out: list[Passage] = []
    for i, p in enumerate(passages):
        try:
            passage = p if isinstance(p, Passage) else Passage.model_validate(p)
        except ValidationError as err:
            raise InputError(f"{what}[{i}] is not a passage ({{id, title, text}}): {err.errors()[0]['msg']}") from None
        for text in (passage.id, passage.title, passage.text):
            require_unicode(text, f"{what}[{i}]")
        out.append(passage)
    return out


def extract_answer(text: str, marker: str = "the answer is") -> str | None:
    """The short answer after the last ``marker`` (case-insensitive) that is followed by one, cut at
    the end of its sentence and without trailing punctuation; ``None`` if there is none."""
    for m in reversed(list(re.finditer(re.escape(marker), text, flags=re.IGNORECASE))):
        tail = re.sub(r"^[\s:]+", "", text[m.end() :]).split("\n")[0]
        end = find_sentence_end(tail + " ")
        answer = (tail[:end] if end is not None else tail).strip().rstrip(".!").strip()
        if answer:
            return answer
    return None


def _add_fields(fields: dict[str, Any], more: dict[str, str]) -> None:
    """``more``'s note / error into a retrieval event's ``fields`` (an error already there is kept)."""
    for key, text in more.items():
        fields[key] = f"{fields[key]}; {text}" if fields.get(key) else text


def check_outcomes(outcomes: object, keys: Sequence[Hashable]) -> None:
    """Raise :class:`BackendError` unless ``outcomes`` maps every row of ``keys`` to a
    :class:`DecodeOutcome` (a backend's malformed or partial round is its failure)."""
    if not isinstance(outcomes, dict):
        raise BackendError(f"the model returned {type(outcomes).__name__} for a decoding round, not outcomes")
    missing = [k for k in keys if not isinstance(outcomes.get(k), DecodeOutcome)]
    if missing:
        raise BackendError(f"the model returned no decoding outcome for {len(missing)} of {len(keys)} rows")


class GatedRAG:
    """Uncertainty-gated retrieval-augmented answering (see the module doc for the loop).

    Components are injected: any :class:`~gatedrag.lm.base.LanguageModel`, any
    :class:`~gatedrag.retrieval.base.Retriever` (or ``None`` for closed-book answering), a gate
    (the signals), a draft gate (``config.draft``'s judges), a prompt template. The policy is
    built from ``config``. :meth:`from_config` builds the embedded defaults.
    """

    def __init__(
        self,
        lm: LanguageModel,
        retriever: Retriever | None,
        config: PipelineConfig | None = None,
        *,
        gate: Gate | None = None,
        prompt: PromptTemplate | None = None,
        draft_gate: Gate | None = None,
        reranker: Reranker | None = None,
        combiner: Combiner | None = None,
    ):
        if retriever is not None and not isinstance(retriever, Retriever):
            raise ConfigError(
                f"{type(retriever).__name__} is not a retriever: give an object with a name and "
                "retrieve(queries, k) (gatedrag.retrieval.base.Retriever)"
            )
        self.lm = lm
        self.retriever = retriever
        self.config = config or PipelineConfig()
        self.gate = gate or Gate(self.config.gate)
        self.prompt = prompt or PromptTemplate.load(self.config.prompt)
        self.draft_gate = draft_gate or build_draft_gate(self.config)
        """Judges the closed-book draft (``config.draft``); ``None``: no draft is written."""
        self.policy = Policy(self.config, has_retriever=retriever is not None)
        self.reranker = reranker
        """Orders a deep search's accumulated passages (``policy.deep_search.rerank: dense``)."""
        self.combiner = combiner
        """Scores candidate answers (``policy.select.combiner``); ``None``: P(True) does."""
        select = self.config.policy.select
        if select is not None and select.combiner is not None and combiner is None:
            raise ConfigError("policy.select.combiner is set: give the loaded Combiner (GatedRAG(..., combiner=...))")
        deep = self.config.policy.deep_search
        if deep is not None and deep.rerank == "dense" and reranker is None:
            raise ConfigError("policy.deep_search.rerank: dense needs a reranker (GatedRAG(..., reranker=...))")
        self._check_model()

    def _check_model(self) -> None:
        """Refuse a model that cannot serve the acting signals (attention, twins) before anything
        runs; a traced-only signal it cannot serve is traced with a note saying so."""
        signals = [*self.gate.signals, *(self.draft_gate.signals if self.draft_gate is not None else [])]
        signals = [s for s in signals if s.act]
        needs = set().union(*(s.needs for s in signals))
        if self.config.policy.control_mode == "always":
            needs.add("twin")
        missing = [n for n in self.lm.capabilities.missing(frozenset(needs)) if n != "logprobs"]  # traced, not refused
        if missing:
            users = sorted({s.name for s in signals if set(s.needs) & set(missing)})
            raise ConfigError(
                f"the model {self.lm.name!r} cannot serve {' and '.join(missing)}, which "
                f"{', '.join(users) or 'knowledge control'} need(s): use model.backend: hf"
            )

    @classmethod
    def from_config(
        cls, config: PipelineConfig | None = None, *, progress: Callable[[str], None] | None = None
    ) -> GatedRAG:
        """Load the configured model and retriever (defaults: the packaged model, the demo corpus)
        through :mod:`gatedrag.factory`."""
        from gatedrag.factory import build_components, build_rag, resolve_backend, with_backend

        config = config or PipelineConfig()
        choice = resolve_backend(config)
        if progress is not None and config.model.backend == "auto":
            progress(f"backend {choice.backend}: {choice.reason}")
        config = with_backend(config, choice)  # the pipeline's config says which backend answers
        return build_rag(config, build_components(config, progress=progress))

    # -- public API -----------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        passages: Sequence[Passage] | None = None,
        on_event: EventCallback | None = None,
        deadline_s: float | None = None,
    ) -> Answer:
        """Answer one question; ``on_event(0, event)`` is called as each event is emitted.
        ``passages``: context given with the question, in the prompt from the start (the gate may
        still retrieve more). ``deadline_s``: past this many seconds the answer ends at its next
        sentence boundary with what it has (``finish_reason="deadline"``)."""
        given = None if passages is None else [validate_passages(passages)]
        return self.batch([question], passages=given, on_event=on_event, deadline_s=deadline_s)[0]

    def batch(
        self,
        questions: Sequence[str],
        *,
        passages: Sequence[Sequence[Passage] | None] | None = None,
        on_event: EventCallback | None = None,
        deadline_s: float | None = None,
    ) -> list[Answer]:
        """Answer several questions, decoding ``decoding.batch_size`` of them together;
        ``on_event(i, event)`` is called as question ``i``'s events are emitted. ``passages[i]``
        (optional) is the context given with question ``i``. ``deadline_s``: for the whole call,
        as in :meth:`ask`."""
        if isinstance(questions, str):
            raise InputError("batch() takes a list of questions; use ask() for one")
        if deadline_s is not None and not deadline_s > 0:
            raise InputError("deadline_s must be positive (or None for no deadline)")
        if not isinstance(questions, Sequence):
            raise InputError(f"batch() takes a list of questions, got {type(questions).__name__}")
        cleaned = [validate_question(q) for q in questions]
        if passages is not None and (isinstance(passages, str | bytes) or not isinstance(passages, Sequence)):
            raise InputError(f"passages must be one list (or None) per question, got {type(passages).__name__}")
        if passages is not None and len(passages) != len(cleaned):
            raise InputError(f"{len(passages)} passage lists for {len(cleaned)} questions")
        given = [
            None if passages is None or passages[i] is None else validate_passages(passages[i], f"passages[{i}]")
            for i in range(len(cleaned))
        ]
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        size = self.config.decoding.batch_size
        answers: list[Answer] = []
        for lo in range(0, len(cleaned), size):
            intake = _Fixed(
                [Admission(lo + i, q, given[lo + i], on_event) for i, q in enumerate(cleaned[lo : lo + size])], deadline
            )
            self.run(intake)
            answers += [intake.answers[lo + i] for i in range(len(intake.answers))]
        return answers

    def stream(
        self, question: str, *, passages: Sequence[Passage] | None = None, deadline_s: float | None = None
    ) -> Generator[Event, None, None]:
        """The events of answering ``question``, each yielded as soon as it is emitted; the last is
        :class:`~gatedrag.events.Finished` (``Answer.from_events`` rebuilds the answer). Closing the
        iterator early stops the answer at its next event."""
        question = validate_question(question)
        out: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def emit(_: int, event: Event) -> None:
            if stop.is_set():
                raise _Cancelled
            out.put(("event", event))

        def work() -> None:
            try:
                self.ask(question, passages=passages, on_event=emit, deadline_s=deadline_s)
                out.put(("end", None))
            except _Cancelled:
                out.put(("end", None))
            except BaseException as err:  # handed to the consumer, raised there
                out.put(("error", err))

        worker = threading.Thread(target=work, name="gatedrag-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = out.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()
            worker.join()

    async def astream(
        self, question: str, *, passages: Sequence[Passage] | None = None, deadline_s: float | None = None
    ) -> AsyncIterator[Event]:
        """:meth:`stream` as an async iterator: the model decodes in a worker thread, the event loop
        stays free."""
        async for event in iterate_in_thread(self.stream(question, passages=passages, deadline_s=deadline_s)):
            yield event

    # -- the loop -------------------------------------------------------------------------------
    def run(self, intake: Intake) -> None:
        """Answer the questions ``intake`` hands over until it has no more, decoding up to
        ``decoding.batch_size`` rows together (continuous batching): new questions join at the
        rows' next sentence boundary, each answer is delivered as soon as its group (the questions
        taken together) is finished, and a row the intake stops (cancelled, past its deadline) or
        whose processing raised ends alone, the other rows going on. What :meth:`batch` and
        :class:`gatedrag.scheduler.Scheduler` run."""
        gen = self.config.decoding
        session = self.lm.open_session()
        rows: dict[Hashable, _Row] = {}
        groups: list[list[Hashable]] = []
        try:
            while True:
                active = [k for k, r in rows.items() if r.phase is not Phase.FINISHED]
                new = intake.take(max(0, gen.batch_size - len(active)), block=not active)
                if new:
                    self._admit(session, rows, groups, new, intake)
                elif not active and not rows:
                    return
                self._stop_waiting_rows(session, rows, intake)
                if active := [k for k, r in rows.items() if r.phase is not Phase.FINISHED]:
                    self._round(session, rows, active, intake)
                self._complete(session, rows, groups, intake)
        finally:
            for key in list(rows):
                session.close(key)

    def _admit(
        self,
        session: DecodeSession,
        rows: dict[Hashable, _Row],
        groups: list[list[Hashable]],
        new: Sequence[Admission],
        intake: Intake,
    ) -> None:
        """Start the questions just taken: given passages, the retrieval before writing or the
        question check (batched over them), the draft phase, the first prompt."""
        policy = self.config.policy
        group = [_Row(index=a.key, question=a.question, phase=Phase.ANSWERING, on_event=a.on_event) for a in new]
        for row, a in zip(group, new):
            rows[row.index] = row
            if a.passages:
                self._give(row, a.passages)
        groups.append([r.index for r in group])
        unread = [r for r in group if r.passages is None]  # given passages: nothing to look up first
        if policy.retrieve_first and self.retriever is not None:
            if unread:
                self._retrieve([(r, [r.question], "before generation") for r in unread], intake)
        elif self.gate.question_signals and unread:
            self._check_questions(unread, intake)
        if self.draft_gate is not None and self.retriever is not None:
            for row in group:
                if row.passages is None:  # not for a question already sent to retrieval
                    row.phase = Phase.DRAFTING  # the starting phase, set before anything is written
        for row in group:
            try:
                self._start(session, row.index, row, initial=True)
            except Exception as err:
                self._drop(row, err, intake)

    def _round(
        self, session: DecodeSession, rows: dict[Hashable, _Row], active: list[Hashable], intake: Intake
    ) -> None:
        """One decoding round of the active rows, then what each row's outcome asks for."""
        gen = self.config.decoding
        room = gen.batch_size - len(active)

        raised: list[BaseException] = []  # what the hook raised (the intake ending the run), not the model

        def hook(key: Hashable, sentence: Sentence) -> SentenceVerdict:
            try:
                return judge(key, sentence)
            except BaseException as err:
                raised.append(err)
                raise

        def judge(key: Hashable, sentence: Sentence) -> SentenceVerdict:
            row = rows[key]
            stop = intake.stop_reason(key)
            if stop is not None:
                self._stop(row, stop, intake)
                return "done"
            try:
                verdict = self._on_sentence(row, sentence)
            except Exception as err:
                self._drop(row, err, intake)
                return "done"
            return "pause" if verdict == "continue" and intake.waiting(room) else verdict

        try:
            outcomes = session.decode(
                active,
                on_sentence=hook,
                budgets={k: max(1, gen.max_answer_tokens - len(rows[k].accepted_ids)) for k in active},
                max_sentence_tokens=gen.segment_tokens or gen.max_sentence_tokens,
                stop_strings=gen.stop_strings,
                split_sentences=gen.segment_tokens is None,
            )
            check_outcomes(outcomes, active)
        except Exception as err:
            if err in raised or (isinstance(err, GatedRAGError) and not isinstance(err, BackendError)):
                for key in active:  # the round failed for every row in it (bad input, or the intake ended the run)
                    self._drop(rows[key], err, intake)
                return
            for key in active:  # the model failed (a server's error, an in-process backend's exception):
                if rows[key].phase is not Phase.FINISHED:  # each answer ends with what it has, labelled
                    what = "" if isinstance(err, BackendError) else f"{type(err).__name__}: "
                    rows[key].emit(Degraded, what="model", error=f"the model failed: {what}{err}")
                    self._finish(session, key, rows[key], "eos")
            return
        due: list[tuple[_Row, AnswerFinish | None]] = []
        for key in active:
            row, out = rows[key], outcomes[key]
            row.counts.llm_calls += 1
            row.counts.generated_tokens += out.new_tokens
            ended: AnswerFinish | None = out.finish if out.finish in ("eos", "stop", "budget") else None  # type: ignore[assignment]
            try:
                if row.phase is Phase.FINISHED:  # the final answer was accepted (or the row was stopped)
                    session.close(key)
                elif row.phase in (Phase.RETRIEVING, Phase.SEARCHING) and (
                    row.pending.sentence is not None or not ended  # type: ignore[union-attr]
                ):
                    due.append((row, ended))
                elif row.phase is Phase.ADJUSTING:
                    self._adjust(session, key, row, ended)
                elif ended or len(row.accepted_ids) >= gen.max_answer_tokens:
                    self._finish(session, key, row, ended or "budget")
                elif row.phase is Phase.RESTARTING:
                    row.passages = None
                    self._start(session, key, row)
                    row.move(Phase.ANSWERING)
            except Exception as err:
                self._drop(row, err, intake)
        if due:
            outcomes_r = self._retrieve([(r, list(r.pending.queries), r.pending.trigger) for r, _ in due], intake)  # type: ignore[union-attr]
            for (row, ended), outcome in zip(due, outcomes_r):
                try:
                    self._after_retrieval(session, row.index, row, outcome, ended)
                except Exception as err:
                    self._drop(row, err, intake)

    def _stop_waiting_rows(self, session: DecodeSession, rows: dict[Hashable, _Row], intake: Intake) -> None:
        """Stop the rows the intake stopped while they were between decoding rounds."""
        for key, row in rows.items():
            if row.phase is not Phase.FINISHED and (stop := intake.stop_reason(key)) is not None:
                self._stop(row, stop, intake)
                session.close(key)

    def _stop(self, row: _Row, stop: StopReason, intake: Intake) -> None:
        """End a row the intake stopped: past its deadline it finishes with what it has (labelled);
        cancelled, it is dropped."""
        if stop == "cancelled":
            self._drop(row, TurnCancelled("the turn was cancelled"), intake)
            return
        row.emit(Degraded, what="deadline", error="the turn's deadline passed: the answer ends with what it has")
        row.move(Phase.FINISHED)
        row.finish = "deadline"

    def _drop(self, row: _Row, error: BaseException, intake: Intake) -> None:
        """End a row without an answer; the intake hears why (and may raise it: :meth:`batch` does)."""
        row.dropped = True
        if row.phase is not Phase.FINISHED:
            row.move(Phase.FINISHED)
        intake.fail(row.index, error)

    def _complete(
        self, session: DecodeSession, rows: dict[Hashable, _Row], groups: list[list[Hashable]], intake: Intake
    ) -> None:
        """Deliver the answers of every group whose rows are all finished (candidates scored together)."""
        for group in [g for g in groups if all(rows[k].phase is Phase.FINISHED for k in g)]:
            groups.remove(group)
            done = [rows.pop(k) for k in group]
            for row in done:
                session.close(row.index)
            kept = [r for r in done if not r.dropped]
            if self.config.policy.select is not None:
                self._select(kept)
            for row in kept:
                intake.deliver(row.index, self._answer(row))

    # -- executing actions ------------------------------------------------------------------------
    def _on_sentence(self, row: _Row, sentence: Sentence) -> SentenceVerdict:
        """The sentence hook: the policy's action on the sentence, emitted, and what the row does."""
        drafting = row.phase is Phase.DRAFTING
        state = AnswerState(
            phase=row.phase,
            retrievals=row.counts.retrievals,
            control_on=row.control_on,
            final=self._is_final(sentence),
            accepted=len(row.accepted),
            search_rounds=row.search_rounds,
            prompt_tokens=row.counts.prompt_tokens,
        )
        context = self._context(row)
        if drafting:
            assert self.draft_gate is not None
            judged = self.draft_gate.evaluate(sentence.tokens, context)
            bundle = judged.with_traced(self.gate.evaluate(sentence.tokens, context))
            action = self.policy.on_draft_sentence(bundle, state)
        else:
            bundle = self.gate.evaluate(sentence.tokens, context)
            action = self.policy.on_sentence(bundle, state)
        if action.kind in ("retrieve", "deep_search"):  # the gate formulates what the policy asked for
            action = action.model_copy(update={"queries": tuple(self._queries(row, sentence, action, bundle, context))})
        number = row.proposed
        row.proposed += 1
        if self.config.policy.select is not None and state.final:
            self._note_candidate(row, sentence, number, bundle)
        row.emit(
            SentenceProposed,
            sentence=number,
            text=sentence.text,
            tokens=len(sentence.tokens),
            signals=list(bundle.values),
            decision=action.decision(),
            role=ROLES.get(row.phase),
        )
        self._note_failed_signals(row, bundle)
        if drafting:
            row.draft.append(number)
        if action.kind in ("retrieve", "deep_search"):
            trigger = f"{'doubtful draft sentence' if drafting else 'sentence'} {len(row.accepted) + 1}"
            if action.kind == "deep_search":
                row.search_rounds += 1
                trigger = f"deep search round {row.search_rounds}, {trigger}"
            row.pending = _Pending(sentence, number, action.queries, trigger, origin=row.phase)
            row.move(Phase.SEARCHING if action.kind == "deep_search" else Phase.RETRIEVING)
            return "act"
        if action.kind == "adjust":
            row.pending = _Pending(sentence, number, origin=row.phase)
            row.move(Phase.ADJUSTING)
            return "act"
        row.keep(sentence, number)
        if action.kind == "finish":
            row.move(Phase.FINISHED)
            row.finish = "answer"
            return "done"
        if row.phase is Phase.REGENERATING and self.policy.rest_ungated:
            resume = Phase.UNGATED  # the rewrite is in; the rest of the answer is accepted as written
        elif row.phase in (Phase.REGENERATING, Phase.CONTROLLED):
            resume = Phase.ANSWERING
        else:
            resume = row.phase
        follow = action.follow_up
        if follow is not None and follow.kind == "scheduled_retrieval":
            query = row.question if follow.query_source == "question" else sentence.text
            max_words = self.config.retrieval.max_query_tokens
            row.pending = _Pending(queries=(truncate_words(query, max_words),), trigger=follow.trigger, resume=resume)
            row.move(Phase.RETRIEVING)
            return "act"
        if follow is not None and follow.kind == "drop_passages":
            row.move(Phase.RESTARTING)
            return "act"
        if resume is not row.phase:
            row.move(resume)
        return "continue"

    def _queries(
        self, row: _Row, sentence: Sentence, action: Action, bundle: SignalBundle, context: SentenceContext
    ) -> list[str]:
        cfg = self.config.retrieval
        if action.query_source == "question":
            return [truncate_words(row.question, cfg.max_query_tokens)]
        if action.query_source == "search":
            return [self._search_query(row, sentence, action, bundle, context)]
        previous = " ".join(s.text.strip() for s in row.accepted[-cfg.query_with_previous :])
        return self.gate.queries(
            sentence.tokens,
            action.reasons,
            bundle,
            context,
            max_words=cfg.max_query_tokens,
            include_question=cfg.query_with_question,
            previous=previous if cfg.query_with_previous else "",
        )

    def _search_query(
        self, row: _Row, sentence: Sentence, action: Action, bundle: SignalBundle, context: SentenceContext
    ) -> str:
        """The query of the deep-search round about to run: ``policy.deep_search.queries`` from this
        round's on, the first that this sentence has not already been retrieved with (the sentence
        as written, when every formulation has been sent)."""
        deep = self.config.policy.deep_search
        assert deep is not None
        max_words = self.config.retrieval.max_query_tokens
        sent: set[str] = set()
        for e in reversed(row.events):  # the retrievals since the last accepted sentence
            if isinstance(e, SentenceAccepted):
                break
            if isinstance(e, Retrieved):
                sent.update(e.query.split(" | "))
        query = ""
        for kind in [*deep.queries[min(row.search_rounds, len(deep.queries) - 1) :], "unmasked"]:
            if kind == "unmasked":
                query = truncate_words(f"{row.question} {sentence.text.strip()}", max_words)
            else:
                previous = row.accepted[-1].text.strip() if kind == "previous" and row.accepted else ""
                query = self.gate.queries(
                    sentence.tokens,
                    action.reasons,
                    bundle,
                    context,
                    max_words=max_words,
                    include_question=True,
                    previous=previous,
                )[0]
            if query not in sent:
                break
        return query

    def _after_retrieval(
        self,
        session: DecodeSession,
        key: Hashable,
        row: _Row,
        outcome: RetrievalOutcome,
        ended: AnswerFinish | None,
    ) -> None:
        """A retrieval is done: write the doubtful sentence again with the new passages (from the
        start of the answer for a draft), or keep it; a scheduled retrieval resumes the row."""
        pending, row.pending = row.pending, None
        assert pending is not None
        if pending.sentence is None:  # scheduled: carry on, with the new passages if there are any
            if outcome == "new":
                self._start(session, key, row)
            row.move(pending.resume)
            return
        rest = self.policy.rest_ungated
        from_draft = pending.origin is Phase.DRAFTING
        if outcome == "new" and from_draft:
            row.emit(DraftDiscarded, sentences=list(row.draft))
            row.accepted = []
        if outcome == "new" and self._start(session, key, row):
            row.emit(SentenceDiscarded, sentence=pending.number, reason="written again with the retrieved passages")
            row.move(Phase.REGENERATING if not from_draft else Phase.UNGATED if rest else Phase.ANSWERING)
            return
        row.keep(pending.sentence, pending.number, note=KEPT_NOTE[outcome])
        row.move(Phase.ANSWERING)
        if self._is_final(pending.sentence) or ended:
            self._finish(session, key, row, ended or "answer")

    def _adjust(self, session: DecodeSession, key: Hashable, row: _Row, ended: AnswerFinish | None) -> None:
        """Write the conflicted sentence again with knowledge control on (until the next retrieval)."""
        pending, row.pending = row.pending, None
        assert pending is not None and pending.sentence is not None
        row.control_on = True
        if self._start(session, key, row):
            row.counts.adjustments += 1
            row.emit(SentenceDiscarded, sentence=pending.number, reason="written again under knowledge control")
            row.move(Phase.CONTROLLED)
            return
        row.keep(pending.sentence, pending.number, note="knowledge control unavailable; sentence kept")
        row.move(Phase.ANSWERING)
        if self._is_final(pending.sentence) or ended:
            self._finish(session, key, row, ended or "answer")

    @staticmethod
    def _note_failed_signals(row: _Row, bundle: SignalBundle) -> None:
        """A :class:`Degraded` event for each value whose backend failed (the gate went on without it)."""
        for v in bundle.values:
            if v.error is not None:
                row.emit(Degraded, what=f"signal {v.name}", error=v.error)

    def _check_questions(self, rows: list[_Row], intake: Intake) -> None:
        """QuCo Stage 1: the question-stage signals on every question; retrieve with the question
        for those that fire (the passages stay in the prompt from the first sentence on)."""
        due = []
        for row, bundle in zip(rows, self.gate.evaluate_questions([r.question for r in rows])):
            action = self.policy.on_question(bundle)
            row.emit(QuestionChecked, question=row.question, signals=list(bundle.values), decision=action.decision())
            self._note_failed_signals(row, bundle)
            if action.kind == "retrieve":
                fired = ", ".join(r.signal for r in action.reasons)
                due.append((row, [row.question], f"question check ({fired})"))
        if due:
            self._retrieve(due, intake)

    def _start(self, session: DecodeSession, key: Hashable, row: _Row, *, initial: bool = False) -> bool:
        """(Re)start a row on the closed-book or retrieval prompt plus the answer so far.

        A prompt too long for the model drops passages from the end until it fits (a
        :class:`PassagesTrimmed` event says which stayed). If it cannot fit at all, the first start
        raises ContextLengthError; a restart emits :class:`Degraded` and returns False, leaving the
        row as it was.
        """
        passages = list(row.passages) if row.passages is not None else None
        while True:
            prefix, prompt = self.prompt.render(row.question, passages)
            try:
                row.counts.prompt_tokens += session.start(
                    key,
                    prompt,
                    cached_prefix=prefix,
                    continuation=row.accepted,
                    twin=self._twin(row, passages),
                )
                row.segment_start = len(row.accepted_ids)
                break
            except ContextLengthError as err:
                if passages:
                    passages = passages[:-1]
                    continue
                if initial:
                    raise
                row.emit(Degraded, what="restart", error=str(err))
                return False
        if row.passages and passages is not None and len(passages) < len(row.passages):
            last = next(e for e in reversed(row.events) if isinstance(e, Retrieved | PassagesGiven))
            row.emit(
                PassagesTrimmed,
                retrieval=last.seq,
                kept=[h.passage.id for h in passages],
                error=f"context too long for all passages: kept {len(passages)} of {len(row.passages)}",
            )
            row.passages = passages
        return True

    def _twin(self, row: _Row, passages: list[Hit] | None) -> Twin | None:
        """A no-context twin for a row with passages, where the model decodes twins and the
        config reads them (an adjust rung in the gate, or control always on)."""
        always = self.config.policy.control_mode == "always"
        if not passages or not self.lm.capabilities.twins:
            return None
        if not always and not any(s.rung == "adjust" for s in self.gate.signals):
            return None
        no_context = self.prompt.render(row.question, None)[1]
        return Twin(prompt=no_context, control=self.config.control, mix=row.control_on or always)

    def _is_final(self, sentence: Sentence) -> bool:
        """Whether a segment completes the answer: it holds the answer marker (for fixed-length
        segments, followed by a finished sentence, so a chunk cut mid-answer does not end it)."""
        gen = self.config.decoding
        text = sentence.text.lower()
        pos = text.find(gen.answer_marker.lower())
        if pos < 0:
            return False
        if gen.segment_tokens is None:
            return True
        return find_sentence_end(sentence.text[pos + len(gen.answer_marker) :] + " ") is not None

    def _context(self, row: _Row) -> SentenceContext:
        return SentenceContext(
            question=row.question, answer_ids=tuple(row.accepted_ids), segment_start=row.segment_start, model=self.lm
        )

    def _give(self, row: _Row, passages: list[Passage]) -> None:
        """Put the caller's passages in the row's prompt (deduplicated by id, in the order given)."""
        unique = list({p.id: p for p in reversed(passages)}.values())[::-1]
        row.passages = [Hit(passage=p, score=1.0, rank=i + 1) for i, p in enumerate(unique)]
        row.emit(
            PassagesGiven,
            passages=[StepPassage.of(h) for h in row.passages],
        )

    def _retrieve(self, requests: Sequence[tuple[_Row, list[str], str]], intake: Intake) -> list[RetrievalOutcome]:
        """Run the queries (batched); several queries of one request are retrieved separately and
        their passages pooled (deduplicated, in order). A failing retriever degrades the retrieval
        instead of raising. Per request: ``new`` (the row's passages were replaced), ``same`` (every
        passage is already in the prompt: nothing to regenerate from, unless
        ``policy.paper.regenerate_without_new_passages``) or ``failed``. The retriever gets
        ``backends.timeout_s`` at most, and no longer than the earliest deadline of the rows."""
        assert self.retriever is not None
        k = self.config.retrieval.top_k
        for row, group, trigger in requests:
            row.emit(RetrievalStarted, queries=list(group), trigger=trigger)
        left = [t for row, _, _ in requests if (t := intake.time_left(row.index)) is not None]
        flat = retrieve_each(
            self.retriever,
            [q for _, group, _ in requests for q in group],
            k,
            limits=self.config.backends,
            budget_s=max(_MIN_BUDGET_S, min(left)) if left else None,
        )
        outcomes: list[RetrievalOutcome] = []
        pos = 0
        for row, group, trigger in requests:
            results, pos = flat[pos : pos + len(group)], pos + len(group)
            outcome, fields = self._pool(row, results)
            row.emit(Retrieved, query=" | ".join(group), trigger=trigger, **fields)
            outcomes.append(outcome)
        return outcomes

    def _pool(self, row: _Row, results: list[list[Hit] | Exception]) -> tuple[RetrievalOutcome, dict[str, Any]]:
        """One request's outcome and the fields of its :class:`Retrieved` event; replaces the row's
        passages when there are new ones."""
        errors = [r for r in results if isinstance(r, Exception)]
        if len(errors) == len(results):  # all failed (or no query at all)
            err = errors[0] if errors else ValueError("no query")
            return "failed", {"error": f"retriever failed: {type(err).__name__}: {err}"}
        row.counts.retrievals += 1
        pooled: dict[str, Hit] = {}
        for res in results:
            if not isinstance(res, Exception):
                for h in res:
                    pooled.setdefault(h.passage.id, h)
        hits = [h.model_copy(update={"rank": i + 1}) for i, h in enumerate(pooled.values())]
        fields: dict[str, Any] = {"passages": [StepPassage.of(h) for h in hits]}
        if errors:
            fields["error"] = f"{len(errors)} of {len(results)} queries failed: {type(errors[0]).__name__}: {errors[0]}"
        if not hits:
            fields["error"] = fields.get("error") or "no passage matched the query"
            return "failed", fields
        held = {h.passage.id for h in row.passages or []}
        if not self.config.policy.paper.regenerate_without_new_passages and held >= set(pooled):
            fields["note"] = "every passage is already in the prompt"
            return "same", fields
        carry = self.config.retrieval.carry_passages
        deep = self.config.policy.deep_search
        if row.phase is Phase.SEARCHING and deep is not None:  # a search accumulates its passages
            carry = max(0, deep.max_passages - len(hits))
        new = {h.passage.id for h in hits}
        kept = [h for h in row.passages or [] if h.passage.id not in new][:carry] if carry else []
        fields["carried"] = [h.passage.id for h in kept]
        row.passages = hits + kept
        searching = row.phase is Phase.SEARCHING and row.pending is not None and row.pending.sentence is not None
        if searching and deep is not None and deep.rerank == "uncertainty":
            _add_fields(fields, self._rerank_by_uncertainty(row, row.pending.sentence))  # type: ignore[union-attr]
        elif searching and self.reranker is not None:
            _add_fields(fields, self._rerank_by_embedding(row, f"{row.question} {row.pending.sentence.text}"))  # type: ignore[union-attr]
        row.control_on = False  # new passages: measure again before controlling
        return "new", fields

    def _rerank_by_embedding(self, row: _Row, query: str) -> dict[str, str]:
        """Order the row's passages by the re-ranker (``backends`` limits its time): a ``note`` for
        the retrieval step; an ``error`` (the step, and so the answer, degraded) keeping the
        retrieval order if it fails or returns other passages than it was given."""
        assert self.reranker is not None
        hits = list(row.passages or [])
        reranker = self.reranker

        def checked() -> list[Hit]:  # a malformed answer is retried like an error
            (ranked,) = check_hits([reranker.rerank(query, hits)], 1)
            if sorted(h.passage.id for h in ranked) != sorted(h.passage.id for h in hits):
                raise RetrievalError("the re-ranker returned other passages than it was given")
            return ranked

        try:
            ranked = guarded(checked, self.config.backends, f"the re-ranker {reranker.name!r}")
        except Exception as err:
            return {"error": f"re-ranking failed ({type(err).__name__}: {err}): passages kept in retrieval order"}
        row.passages = ranked
        return {"note": f"passages re-ranked by {reranker.name}"}

    def _rerank_by_uncertainty(self, row: _Row, sentence: Sentence) -> dict[str, str]:
        """Order the row's passages by the mean NLL (nats a token) of the doubtful sentence written
        after each one alone (SeaKR), lowest first; each hit's score becomes minus that NLL. Keeps
        the order, with an ``error``, if the model cannot score."""
        hits = list(row.passages or [])
        so_far = " ".join(s.text.strip() for s in row.accepted)
        prompts = [self.prompt.render(row.question, [h])[1] + (" " + so_far if so_far else "") for h in hits]
        try:
            scored = score_checked(self.lm, prompts, [" " + sentence.text.strip()] * len(hits))
        except Exception as err:
            return {
                "error": f"uncertainty re-ranking failed ({type(err).__name__}: {err}): passages kept in retrieval order"
            }
        nll = [-sum(t.logprob for t in steps) / max(1, len(steps)) for steps in scored]
        order = sorted(range(len(hits)), key=lambda i: nll[i])
        row.passages = [hits[i].model_copy(update={"score": -nll[i], "rank": r}) for r, i in enumerate(order, 1)]
        return {"note": "passages re-ranked by the sentence's NLL with each (lowest first)"}

    # -- answer selection -------------------------------------------------------------------------
    def _note_candidate(self, row: _Row, sentence: Sentence, number: int, bundle: SignalBundle) -> None:
        """Keep a proposed final-answer sentence as a candidate, with what it was written with."""
        marker = self.config.decoding.answer_marker
        short = extract_answer(sentence.text, marker)
        if not short:
            return
        rung = self._rung_of(row)
        passages = [h.passage for h in row.passages or []]
        candidate = Candidate(
            sentence=number,
            answer=short,
            rung=rung,
            retrievals=row.counts.retrievals,
            signals=list(bundle.values),
            passages=[p.id for p in passages],
            confidence=self._confidence([sentence], marker),
        )
        row.candidates.append(_Candidate(candidate, passages))

    @staticmethod
    def _rung_of(row: _Row) -> CandidateRung:
        """What the row's next sentence is written with."""
        if row.passages is None:
            return "closed_book"
        if row.search_rounds:
            return "deep_search"
        if row.counts.retrievals == 0:  # passages in the prompt, none retrieved: given with the question
            return "given"
        return "retrieved"

    def _select(self, rows: Sequence[_Row]) -> None:
        """Score every row's candidates (their P(True) in one batched pass, the sampled versions of
        the final answer in one batched round) and choose one a row."""
        select = self.config.policy.select
        assert select is not None
        todo = [r for r in rows if r.candidates]
        p_true = self._verify(todo) if select.verify and todo else {}
        samples = self._sample_answers(todo, select.samples, select.temperature) if select.samples and todo else {}
        scorer = "+".join(n for n, used in (("p_true", p_true), ("samples", samples)) if used) or "confidence"
        if self.combiner is not None:
            scorer = f"combiner {select.combiner.name if select.combiner else ''}".strip()
        for r in todo:
            answers = [c.candidate.answer for c in r.candidates]
            exact, soft = agreement(answers), agreement(answers, soft=True)
            drawn = samples.get(r.index)
            scored = []
            for i, c in enumerate(r.candidates):
                pt = p_true.get((r.index, i))
                sa = agreement_with(c.candidate.answer, drawn) if drawn else None
                sas = agreement_with(c.candidate.answer, drawn, soft=True) if drawn else None
                features = candidate_features(
                    c.candidate,
                    p_true=pt,
                    agreement=exact[i],
                    agreement_soft=soft[i],
                    sample_agreement=sa,
                    sample_agreement_soft=sas,
                )
                if self.combiner is not None:
                    score = self.combiner.probability(features)
                else:  # unfitted: P(True), averaged with the sample agreement when there is one
                    parts = [v for v in (pt, sa) if v is not None]
                    score = sum(parts) / len(parts) if parts else c.candidate.confidence
                scored.append(
                    ScoredCandidate(
                        **c.candidate.model_dump(),
                        p_true=pt,
                        agreement=exact[i],
                        agreement_soft=soft[i],
                        sample_agreement=sa,
                        sample_agreement_soft=sas,
                        score=min(1.0, max(0.0, score)),
                    )
                )
            best = choose([c.score for c in scored])
            r.emit(CandidatesScored, candidates=scored, chosen=best, scorer=scorer)
            r.chosen = scored[best]

    def _verify(self, rows: Sequence[_Row]) -> dict[tuple[int, int], float]:
        """P(True) of every candidate of ``rows``, keyed by (row, candidate); empty if it failed."""
        checks = [
            (r.index, i, AnswerCheck(question=r.question, answer=c.candidate.answer, passages=c.passages))
            for r in rows
            for i, c in enumerate(r.candidates)
        ]
        try:
            verified = verify_answers(self.lm, [c for _, _, c in checks])
        except Exception as err:  # the answer goes on, scored without it
            for r in rows:
                r.emit(Degraded, what="verify", error=f"P(True) unavailable: {type(err).__name__}: {err}")
            return {}
        return {(ri, i): v.p_true for (ri, i, _), v in zip(checks, verified)}

    def _sample_answers(self, rows: Sequence[_Row], k: int, temperature: float) -> dict[int, list[str]]:
        """``k`` sampled versions of each row's final answer: its last prompt and the reasoning it
        accepted before the final-answer sentence, continued with sampling (all rows' samples in
        one decoding round) until a sentence states an answer. Empty for a row on failure."""
        gen = self.config.decoding
        session = self.lm.open_session()
        found: dict[Hashable, str] = {}
        keys: list[tuple[int, int]] = []
        try:
            for r in rows:
                prefix, prompt = self.prompt.render(r.question, list(r.passages) if r.passages is not None else None)
                reasoning = list(itertools.takewhile(lambda s: not self._is_final(s), r.accepted))
                for j in range(k):
                    session.start((r.index, j), prompt, cached_prefix=prefix, continuation=reasoning)
                    keys.append((r.index, j))

            def hook(key: Hashable, sentence: Sentence) -> SentenceVerdict:
                short = extract_answer(sentence.text, gen.answer_marker) if self._is_final(sentence) else None
                if short:
                    found[key] = short
                    return "done"
                return "continue"

            session.decode(
                keys,
                on_sentence=hook,
                budgets=dict.fromkeys(keys, gen.max_sentence_tokens),
                max_sentence_tokens=gen.max_sentence_tokens,
                stop_strings=gen.stop_strings,
                regroup=False,
                sampling=Sampling(temperature=temperature),
            )
        except Exception as err:  # the answer goes on, scored without samples
            for r in rows:
                r.emit(Degraded, what="samples", error=f"sampled answers unavailable: {type(err).__name__}: {err}")
            return {}
        finally:
            for key in keys:
                session.close(key)
        out: dict[int, list[str]] = {}
        for (index, _), answer in ((key, found[key]) for key in keys if key in found):
            out.setdefault(index, []).append(answer)
        return out

    def _finish(self, session: DecodeSession, key: Hashable, row: _Row, reason: AnswerFinish) -> None:
        row.move(Phase.FINISHED)
        row.finish = "answer" if any(self._is_final(s) for s in row.accepted) else reason
        session.close(key)

    def _answer(self, row: _Row) -> Answer:
        marker = self.config.decoding.answer_marker
        text = " ".join(s.text for s in row.accepted)
        short = extract_answer(text, marker)
        confidence = self._confidence(row.accepted, marker)
        if row.chosen is not None:
            short = row.chosen.answer
            confidence = row.chosen.score if self.combiner is not None else confidence
        row.counts.wall_time_s = round(time.perf_counter() - row.t0, 3)
        row.emit(
            Finished,
            text=text,
            answer=short if short is not None else (row.accepted[-1].text if row.accepted else ""),
            confidence=confidence,
            counts=row.counts.model_copy(),
            finish_reason=row.finish,
            model=self.lm.name,
            sources=list(row.sources.values()),
        )
        return Answer.from_events(row.question, row.events)

    @staticmethod
    def _confidence(sentences: list[Sentence], marker: str) -> float:
        """Geometric-mean probability of the final answer's tokens (all accepted tokens if none)."""
        for s in reversed(sentences):
            text = "".join(t.text for t in s.tokens)
            pos = text.lower().rfind(marker.lower())
            if pos < 0:
                continue
            cut, offset, picked = pos + len(marker), 0, []
            for t in s.tokens:
                if offset >= cut and t.text.strip(" .\n"):
                    picked.append(t.logprob)
                offset += len(t.text)
            if picked:
                return geometric_mean_probability(picked) or 0.0
        return geometric_mean_probability([t.logprob for s in sentences for t in s.tokens]) or 0.0


class _Cancelled(Exception):
    """Raised inside a streamed answer whose consumer stopped listening."""


__all__ = ["Admission", "GatedRAG", "Intake", "StopReason", "build_draft_gate", "extract_answer", "validate_question"]
