"""The immutable events of an answer's trace, and the answer they add up to.

The controller emits events as things happen: a question checked, a sentence proposed with its
signal values and the policy's decision, then accepted or discarded, a retrieval with its query and
passages, a degraded backend, the finish. An emitted event never changes; later facts are new
events (a retrieval whose passages had to be cut to fit the context is followed by a
:class:`PassagesTrimmed`). :attr:`Answer.steps`, the per-step view the CLI and the evaluation
records show, is derived from them by :func:`steps_from_events`.

Example:
    >>> from gatedrag.events import Answer, Finished, SentenceAccepted, SentenceProposed
    >>> from gatedrag.types import Counts, Decision
    >>> events = [
    ...     SentenceProposed(seq=0, sentence=0, text="So the answer is x.", tokens=6, decision=Decision(action="accept")),
    ...     SentenceAccepted(seq=1, sentence=0, text="So the answer is x."),
    ...     Finished(seq=2, text="So the answer is x.", answer="x", confidence=0.9, counts=Counts()),
    ... ]
    >>> a = Answer.from_events("q", events)
    >>> a.answer, a.steps[0].accepted
    ('x', True)
    >>> Answer.model_validate_json(a.model_dump_json()) == a
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.gate.select import ScoredCandidate
from gatedrag.types import AnswerFinish, Counts, Decision, Passage, SignalValue, Step, StepPassage

SentenceRole = Literal["draft", "regenerated", "controlled"]
"""Why a sentence was written: as part of the closed-book draft, again after a retrieval, or again
under knowledge control (``None``: written as it came)."""

ROLE_TRIGGER: dict[SentenceRole, str] = {
    "draft": "closed-book draft",
    "regenerated": "regenerated after retrieval",
    "controlled": "regenerated under knowledge control",
}
"""How each role reads in :attr:`Step.trigger`."""

DRAFT_DISCARDED_NOTE = "closed-book draft, discarded: the answer was written again with passages"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0)
    """Position in the answer's event stream, from 0."""


class QuestionChecked(_Event):
    """The question-stage signals (corpus frequency of the question's entities) and the decision:
    ``retrieve`` sends the question to retrieval before anything is written."""

    type: Literal["question_checked"] = "question_checked"
    question: str
    signals: list[SignalValue] = Field(default_factory=list)
    decision: Decision


class SentenceProposed(_Event):
    """A sentence the model wrote, the signal values computed on it and the policy's decision.
    ``sentence`` numbers the answer's proposed sentences from 0; acceptance follows as its own event."""

    type: Literal["sentence_proposed"] = "sentence_proposed"
    sentence: int = Field(ge=0)
    text: str
    tokens: int = 0
    signals: list[SignalValue] = Field(default_factory=list)
    decision: Decision
    role: SentenceRole | None = None


class SentenceAccepted(_Event):
    """A proposed sentence is part of the answer now. ``note`` says why when the decision had asked
    for something else (a retrieval that found nothing new, control that was unavailable)."""

    type: Literal["sentence_accepted"] = "sentence_accepted"
    sentence: int = Field(ge=0)
    text: str
    note: str | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    """Geometric-mean probability of the sentence's tokens (``None``: it has none)."""
    passages: list[str] = Field(default_factory=list)
    """Ids of the passages in the prompt when it was written (its citations; see
    :attr:`Finished.sources`)."""
    titles: list[str] = Field(default_factory=list)
    """The titles of those passages, in the same order (what a chat shows beside the sentence)."""


class SentenceDiscarded(_Event):
    """A proposed sentence was dropped and will be written again (with passages, or under control)."""

    type: Literal["sentence_discarded"] = "sentence_discarded"
    sentence: int = Field(ge=0)
    reason: str


class DraftDiscarded(_Event):
    """The closed-book draft was abandoned: its accepted sentences are no longer part of the answer,
    which is written again from its start with passages."""

    type: Literal["draft_discarded"] = "draft_discarded"
    sentences: list[int]


class RetrievalStarted(_Event):
    """A retrieval is under way: its queries (several are retrieved separately and pooled) and why.
    The :class:`Retrieved` that follows it in the same answer's stream carries what it found."""

    type: Literal["retrieval_started"] = "retrieval_started"
    queries: list[str]
    trigger: str


class Retrieved(_Event):
    """A retrieval with its query and passages; ``error`` when the retriever failed (the answer goes
    on without new passages), ``note`` for an outcome that is not an error."""

    type: Literal["retrieval"] = "retrieval"
    query: str
    trigger: str
    passages: list[StepPassage] = Field(default_factory=list)
    carried: list[str] = Field(default_factory=list)
    error: str | None = None
    note: str | None = None


class PassagesGiven(_Event):
    """Passages the caller gave with the question (``ask(question, passages=...)``): they are in the
    prompt from the first sentence on, and no retrieval was spent on them."""

    type: Literal["passages_given"] = "passages_given"
    passages: list[StepPassage]


GIVEN_TRIGGER = "given with the question"
"""How given passages read in :attr:`Step.trigger` (a retrieval step without a query)."""


class PassagesTrimmed(_Event):
    """The prompt was too long for every passage of retrieval ``retrieval`` (its ``seq``): only
    ``kept`` stayed in the prompt."""

    type: Literal["passages_trimmed"] = "passages_trimmed"
    retrieval: int
    kept: list[str]
    error: str


class CandidatesScored(_Event):
    """Answer selection (``policy.select``): every candidate answer with its score, and the index
    of the one returned; ``scorer`` names what scored them (P(True) or a combiner file)."""

    type: Literal["candidates_scored"] = "candidates_scored"
    candidates: list[ScoredCandidate]
    chosen: int = Field(ge=0)
    scorer: str


class Degraded(_Event):
    """A backend failed and the answer went on without it (e.g. a restart that could not fit)."""

    type: Literal["degraded"] = "degraded"
    what: str
    error: str


class Finished(_Event):
    """The answer is complete: its text, short answer, confidence, costs and why it ended."""

    type: Literal["finished"] = "finished"
    text: str
    answer: str
    confidence: float = Field(ge=0.0, le=1.0)
    counts: Counts
    finish_reason: AnswerFinish = "answer"
    model: str = ""
    sources: list[Passage] = Field(default_factory=list)
    """Every passage an accepted sentence was written with, in the order first cited, text included."""


Event = Annotated[
    QuestionChecked
    | SentenceProposed
    | SentenceAccepted
    | SentenceDiscarded
    | DraftDiscarded
    | RetrievalStarted
    | Retrieved
    | PassagesGiven
    | PassagesTrimmed
    | CandidatesScored
    | Degraded
    | Finished,
    Field(discriminator="type"),
]


def steps_from_events(events: Sequence[Event]) -> list[Step]:
    """The per-step view of a trace: one :class:`Step` per question check, proposed sentence and
    retrieval, in order, with the later facts about each (accepted, discarded draft, trimmed
    passages) applied to copies. The events themselves are not touched."""
    steps: list[Step] = []
    by_sentence: dict[int, int] = {}
    by_seq: dict[int, int] = {}
    for e in events:
        if isinstance(e, QuestionChecked):
            steps.append(
                Step(index=len(steps), kind="question", text=e.question, signals=e.signals, decision=e.decision)
            )
        elif isinstance(e, SentenceProposed):
            by_sentence[e.sentence] = len(steps)
            steps.append(
                Step(
                    index=len(steps),
                    kind="sentence",
                    text=e.text,
                    tokens=e.tokens,
                    signals=e.signals,
                    decision=e.decision,
                    trigger=ROLE_TRIGGER[e.role] if e.role else None,
                )
            )
        elif isinstance(e, SentenceAccepted):
            i = by_sentence[e.sentence]
            decision = steps[i].decision
            if e.note and decision is not None:
                decision = decision.model_copy(update={"note": e.note})
            steps[i] = steps[i].model_copy(update={"accepted": True, "decision": decision})
        elif isinstance(e, DraftDiscarded):
            for n in e.sentences:
                i = by_sentence[n]
                steps[i] = steps[i].model_copy(update={"accepted": False, "note": DRAFT_DISCARDED_NOTE})
        elif isinstance(e, Retrieved):
            by_seq[e.seq] = len(steps)
            steps.append(
                Step(
                    index=len(steps),
                    kind="retrieval",
                    query=e.query,
                    trigger=e.trigger,
                    passages=[p.summary() for p in e.passages],
                    carried=e.carried,
                    error=e.error,
                    note=e.note,
                )
            )
        elif isinstance(e, PassagesGiven):
            by_seq[e.seq] = len(steps)
            steps.append(
                Step(
                    index=len(steps),
                    kind="retrieval",
                    trigger=GIVEN_TRIGGER,
                    passages=[p.summary() for p in e.passages],
                )
            )
        elif isinstance(e, PassagesTrimmed):
            i = by_seq[e.retrieval]
            kept = set(e.kept)
            steps[i] = steps[i].model_copy(
                update={"error": e.error, "carried": [c for c in steps[i].carried if c in kept]}
            )
        elif isinstance(e, Degraded):
            steps.append(Step(index=len(steps), kind="retrieval", error=e.error))
    return steps


class Answer(BaseModel):
    """A gated, traced answer: the fold of its event stream.

    ``text`` is the whole generated answer (reasoning included), ``answer`` the short final answer
    extracted after "the answer is", ``confidence`` in [0, 1] the geometric-mean probability of the
    tokens of the final answer (of all accepted tokens when no final answer was found). ``events``
    is the trace as it was emitted; :attr:`steps` is its per-step view.
    """

    model_config = ConfigDict(extra="forbid")

    question: str
    text: str
    answer: str
    confidence: float = Field(ge=0.0, le=1.0)
    counts: Counts = Field(default_factory=Counts)
    events: list[Event] = Field(default_factory=list)
    finish_reason: AnswerFinish = "answer"
    model: str = ""
    sources: list[Passage] = Field(default_factory=list)
    """The passages the answer's accepted sentences were written with (text included)."""

    @classmethod
    def from_events(cls, question: str, events: Sequence[Event]) -> Answer:
        """The answer a complete event stream (ending in :class:`Finished`) describes."""
        last = events[-1] if events else None
        if not isinstance(last, Finished):
            raise ValueError("an answer's event stream ends with a Finished event")
        return cls(
            question=question,
            text=last.text,
            answer=last.answer,
            confidence=last.confidence,
            counts=last.counts,
            events=list(events),
            finish_reason=last.finish_reason,
            model=last.model,
            sources=last.sources,
        )

    @property
    def steps(self) -> list[Step]:
        """The trace as steps (question check, sentences, retrievals), derived from :attr:`events`."""
        return steps_from_events(self.events)

    @property
    def selection(self) -> CandidatesScored | None:
        """The answer-selection event (``policy.select``): every candidate with its score."""
        return next((e for e in reversed(self.events) if isinstance(e, CandidatesScored)), None)

    @property
    def degraded(self) -> bool:
        """True when any backend failed while answering (see the steps' ``error``)."""
        return any(s.degraded for s in self.steps)

    @property
    def retrieved(self) -> bool:
        """True when at least one retrieval ran for this answer."""
        return self.counts.retrievals > 0


__all__ = [
    "DRAFT_DISCARDED_NOTE",
    "GIVEN_TRIGGER",
    "ROLE_TRIGGER",
    "Answer",
    "CandidatesScored",
    "Degraded",
    "DraftDiscarded",
    "Event",
    "Finished",
    "PassagesGiven",
    "PassagesTrimmed",
    "QuestionChecked",
    "RetrievalStarted",
    "Retrieved",
    "SentenceAccepted",
    "SentenceDiscarded",
    "SentenceProposed",
    "SentenceRole",
    "steps_from_events",
]
