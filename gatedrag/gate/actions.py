"""What the policy decides: one typed action per sentence (or question), with its reasons.

An :class:`Action` is immutable. ``kind`` is what happens to the sentence: ``accept`` it,
``retrieve`` (and write it again with the passages), ``deep_search``, ``adjust`` (write it again
under knowledge control) or ``finish`` (accept it and end the answer). ``reasons`` are the signals
over their thresholds behind the rung the action is about; ``vetoes`` name every rung that was asked
for and refused, and why (a budget spent, a sentence just regenerated, ...). ``follow_up`` is what
the controller does after an accepted sentence whatever the signals said (a scheduled retrieval,
dropping the passages).

Example:
    >>> from gatedrag.gate.actions import Action, Veto
    >>> veto = Veto(rule="retrieval_budget", rung="retrieve", text="retrieval budget of 3 spent")
    >>> a = Action(kind="finish", vetoes=(veto,), note=veto.text)
    >>> a.keeps_sentence, a.decision().action, a.decision().note
    (True, 'accept', 'retrieval budget of 3 spent')
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from gatedrag.config import KnowledgeControlConfig
from gatedrag.signals.base import Rung
from gatedrag.types import Decision, Reason

ActionKind = Literal["accept", "retrieve", "deep_search", "adjust", "finish"]
VetoRule = Literal[
    "no_retriever",
    "final_unchecked",
    "just_regenerated",
    "rest_ungated",
    "retrieval_budget",
    "already_controlled",
    "search_budget",
]
"""Why a rung the signals asked for was refused:

* ``no_retriever``: nothing to retrieve from (closed-book answering);
* ``final_unchecked``: the final-answer sentence is not gated (``policy.check_final_sentence=false``);
* ``just_regenerated``: the sentence was just written again with new passages or under control
  (hysteresis: one rewrite per retrieval);
* ``rest_ungated``: after a retrieval the rest of the answer is accepted (``accept_after_retrieval=rest``);
* ``retrieval_budget``: ``policy.max_retrievals`` are spent;
* ``already_controlled``: knowledge control is on already (it stays on until the next retrieval);
* ``search_budget``: the sentence has had its ``policy.deep_search.rounds``, or the answer has read
  ``policy.deep_search.max_prompt_tokens``.
"""
QuerySource = Literal["signals", "question", "sentence", "search"]
"""Where a retrieval's queries come from: the doubtful sentence as the fired signals formulate it
(masked tokens, QFS, claims), the question, the sentence just written (scheduled retrieval), or a
deep-search round's reformulation (``policy.deep_search.queries``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Veto(_Frozen):
    """A rung the signals asked for, refused by a rule of the policy."""

    rule: VetoRule
    rung: Rung
    text: str
    """The rule in words, for the trace."""


class FollowUp(_Frozen):
    """What comes after an accepted sentence regardless of its signals."""

    kind: Literal["scheduled_retrieval", "drop_passages"]
    query_source: QuerySource = "sentence"
    trigger: str = ""


class Action(_Frozen):
    """The policy's verdict on a sentence or a question (see the module doc)."""

    kind: ActionKind
    reasons: tuple[Reason, ...] = ()
    vetoes: tuple[Veto, ...] = ()
    query_source: QuerySource | None = None
    """For ``retrieve`` / ``deep_search``: what the queries are made from."""
    queries: tuple[str, ...] = ()
    """For ``retrieve`` / ``deep_search``: the queries (several are retrieved separately, passages
    pooled). The policy decides from values alone; the gate's signals formulate the queries (some
    re-read the model's attention), and the controller completes the action with them before it is
    emitted."""
    control: KnowledgeControlConfig | None = None
    """For ``adjust``: how the logits are re-mixed."""
    follow_up: FollowUp | None = None
    note: str | None = None
    """The decision in words, for people reading the trace (never read by the controller)."""

    @property
    def keeps_sentence(self) -> bool:
        """Whether the sentence stays in the answer as written."""
        return self.kind in ("accept", "finish")

    def decision(self) -> Decision:
        """The trace's view: ``finish`` reads as ``accept`` (the sentence is accepted; the answer ends)."""
        kind = "accept" if self.kind == "finish" else self.kind
        return Decision(action=kind, reasons=list(self.reasons), note=self.note)


__all__ = ["Action", "ActionKind", "FollowUp", "QuerySource", "Veto", "VetoRule"]
