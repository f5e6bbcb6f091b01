"""The answer's state as the policy sees it, and the phases an answer moves through.

The controller keeps one :class:`Phase` per answer and moves it only along
:data:`TRANSITIONS`; the policy reads the phase (and the budgets spent) from an
:class:`AnswerState` to decide on each sentence.

Example:
    >>> from gatedrag.gate.state import TRANSITIONS, Phase, can_finish
    >>> Phase.REGENERATING in TRANSITIONS[Phase.RETRIEVING]
    True
    >>> all(can_finish(p) for p in Phase)
    True
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Phase(StrEnum):
    """Where one answer is. Writing phases (the model is decoding the row): ``drafting``,
    ``answering``, ``regenerating``, ``controlled``, ``ungated``. Between decoding rounds a row waits
    in ``retrieving`` (a retrieval is due), ``adjusting`` (a restart under knowledge control is due)
    or ``restarting`` (a restart without passages is due); ``finished`` is final."""

    DRAFTING = "drafting"
    """Writing the closed-book draft; each sentence is judged by the draft's rules."""
    ANSWERING = "answering"
    """Writing; each sentence is gated."""
    REGENERATING = "regenerating"
    """Writing a doubtful sentence again, with the passages just retrieved."""
    CONTROLLED = "controlled"
    """Writing a conflicted sentence again under knowledge control."""
    UNGATED = "ungated"
    """Writing the rest of the answer with passages, accepted as it comes (``accept_after_retrieval=rest``)."""
    RETRIEVING = "retrieving"
    """A retrieval is due before the row writes again."""
    SEARCHING = "searching"
    """A deep search (several rounds, reformulated queries) is due before the row writes again."""
    ADJUSTING = "adjusting"
    """The row is to restart with knowledge control on, to write its last sentence again."""
    RESTARTING = "restarting"
    """The row is to restart without passages (``keep_passages=false``)."""
    FINISHED = "finished"


WRITING = frozenset({Phase.DRAFTING, Phase.ANSWERING, Phase.REGENERATING, Phase.CONTROLLED, Phase.UNGATED})
"""Phases in which the row is decoded."""

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.DRAFTING: frozenset({Phase.DRAFTING, Phase.RETRIEVING, Phase.FINISHED}),
    Phase.ANSWERING: frozenset({Phase.ANSWERING, Phase.RETRIEVING, Phase.SEARCHING, Phase.ADJUSTING, Phase.FINISHED}),
    Phase.REGENERATING: frozenset(
        {
            Phase.ANSWERING,
            Phase.UNGATED,
            Phase.RETRIEVING,
            Phase.SEARCHING,  # still doubtful after its retrieval: search deeper (policy.deep_search)
            Phase.ADJUSTING,
            Phase.RESTARTING,
            Phase.FINISHED,
        }
    ),
    Phase.CONTROLLED: frozenset({Phase.ANSWERING, Phase.RETRIEVING, Phase.FINISHED}),
    Phase.UNGATED: frozenset({Phase.UNGATED, Phase.RETRIEVING, Phase.FINISHED}),
    # new passages: write the sentence again; nothing new or a failure: keep it and go on
    Phase.RETRIEVING: frozenset({Phase.REGENERATING, Phase.UNGATED, Phase.ANSWERING, Phase.FINISHED}),
    Phase.SEARCHING: frozenset({Phase.REGENERATING, Phase.UNGATED, Phase.ANSWERING, Phase.FINISHED}),
    Phase.ADJUSTING: frozenset({Phase.CONTROLLED, Phase.ANSWERING, Phase.FINISHED}),
    Phase.RESTARTING: frozenset({Phase.ANSWERING, Phase.FINISHED}),
    Phase.FINISHED: frozenset(),
}
"""Every move the controller may make: ``TRANSITIONS[a]`` holds the phases reachable from ``a``
in one step. Budgets make every path finite: each writing round accepts a sentence (the answer's
token budget bounds them) or spends a retrieval or an adjustment (bounded per answer)."""


def can_finish(phase: Phase) -> bool:
    """Whether ``finished`` is reachable from ``phase`` along :data:`TRANSITIONS`."""
    seen, todo = {phase}, [phase]
    while todo:
        p = todo.pop()
        if p is Phase.FINISHED:
            return True
        for q in TRANSITIONS[p] - seen:
            seen.add(q)
            todo.append(q)
    return False


class AnswerState(BaseModel):
    """What the policy knows of an answer when it decides on a sentence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: Phase
    retrievals: int = Field(default=0, ge=0)
    """Retrievals spent on this answer so far."""
    control_on: bool = False
    """Knowledge control is on for this row (from an adjustment until the next retrieval)."""
    final: bool = False
    """The sentence holds the final answer ("the answer is ...")."""
    accepted: int = Field(default=0, ge=0)
    """Sentences accepted into the answer before this one."""
    search_rounds: int = Field(default=0, ge=0)
    """Deep-search rounds already spent on this sentence."""
    prompt_tokens: int = Field(default=0, ge=0)
    """Prompt tokens the answer has read so far (every start and restart)."""


__all__ = ["TRANSITIONS", "WRITING", "AnswerState", "Phase", "can_finish"]
