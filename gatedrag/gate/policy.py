"""The policy: signal values and the answer's state in, one typed :class:`~gatedrag.gate.actions.Action` out.

Every rule that turns signals into an action lives here, in the order it is applied:

1. **Rungs.** A fired acting signal asks for its rung (``retrieve``, ``deep_search`` or ``adjust``);
   retrieval rungs combine their signals by ``gate.combine`` (``any`` / ``all``), the adjust rung
   by any. Rungs are tried in :data:`LADDER` order: retrieval beats knowledge control.
   With ``policy.deep_search``, a sentence still doubtful after it was written again with
   retrieved passages escalates: its ``retrieve`` becomes ``deep_search`` (a reformulated query,
   passages accumulated), for ``deep_search.rounds`` rounds.
2. **Vetoes.** A rung asked for may be refused (:data:`~gatedrag.gate.actions.VetoRule`): no
   retriever, the final-answer sentence unchecked, just regenerated (hysteresis), the rest of the
   answer accepted after a retrieval, the retrieval budget spent, control already on. A refused
   rung falls to the next one; when none is left the sentence is accepted, its vetoes named.
3. **Follow-ups** of an accepted sentence: a scheduled retrieval (FS-RAG, FL-RAG) while the
   budget lasts, else dropping the passages after a regenerated sentence (``keep_passages=false``).

The policy is pure: it never calls a model or a retriever, and it never changes a value it was given.

Example:
    >>> import math
    >>> from gatedrag.config import PipelineConfig
    >>> from gatedrag.gate import Gate, Policy
    >>> from gatedrag.gate.state import AnswerState, Phase
    >>> from gatedrag.types import TokenStep
    >>> cfg = PipelineConfig()
    >>> bundle = Gate(cfg.gate).evaluate([TokenStep(token_id=1, text=" 1789", logprob=math.log(0.5), entropy=2.0)])
    >>> policy = Policy(cfg, has_retriever=True)
    >>> policy.on_sentence(bundle, AnswerState(phase=Phase.ANSWERING)).kind
    'retrieve'
    >>> a = policy.on_sentence(bundle, AnswerState(phase=Phase.ANSWERING, retrievals=3))
    >>> a.kind, a.vetoes[0].rule, a.note
    ('accept', 'retrieval_budget', 'retrieval budget of 3 spent')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from gatedrag.config import PipelineConfig
from gatedrag.gate.actions import Action, FollowUp, Veto
from gatedrag.gate.bundle import SignalBundle
from gatedrag.gate.state import AnswerState, Phase
from gatedrag.signals.base import Rung
from gatedrag.types import Reason

LADDER: tuple[Rung, ...] = ("deep_search", "retrieve", "adjust")
"""The order rungs are tried in when several are asked for."""

DRAFT_ABANDONED = "draft abandoned: retrieve with the question"


class Policy:
    """Decides on questions, draft sentences and sentences (see the module doc).

    ``has_retriever``: whether the pipeline has a retriever (without one, retrieval is vetoed).
    ``draft_combine``: how the draft's rules combine (``draft.combine``).
    """

    def __init__(self, config: PipelineConfig, *, has_retriever: bool):
        policy = config.policy
        self.has_retriever = has_retriever
        self.combine = config.gate.combine
        self.draft_combine = config.draft.combine if config.draft is not None else "any"
        self.check_final_sentence = policy.check_final_sentence
        self.max_retrievals = policy.max_retrievals
        self.rest_ungated = policy.paper.accept_after_retrieval == "rest"
        self.keep_passages = policy.keep_passages
        self.scheduled = policy.scheduled_retrieval
        self.scheduled_query: Literal["question", "sentence"] = (
            "question" if policy.paper.scheduled_query == "question" else "sentence"
        )
        self.segment = "chunk" if config.decoding.segment_tokens else "sentence"
        self.control = config.control
        self.control_always = policy.control_mode == "always"
        self.deep = policy.deep_search

    # -- the three decisions --------------------------------------------------------------------
    def on_question(self, bundle: SignalBundle) -> Action:
        """QuCo Stage 1: retrieve with the question before writing when its signals ask for it."""
        reasons = bundle.asking("retrieve", self.combine)
        if not reasons:
            return Action(kind="accept")
        if not self.has_retriever:
            veto = Veto(rule="no_retriever", rung="retrieve", text="no retriever configured")
            return Action(kind="accept", reasons=reasons, vetoes=(veto,), note=veto.text)
        return Action(kind="retrieve", reasons=reasons, query_source="question")

    def on_draft_sentence(self, bundle: SignalBundle, state: AnswerState) -> Action:
        """A closed-book draft sentence, judged by the draft's rules: the first doubtful one abandons
        the draft (retrieve with the question and write the answer again), budget permitting."""
        end = "finish" if state.final else "accept"
        reasons = bundle.asking("retrieve", self.draft_combine)
        if not reasons:
            return Action(kind=end)
        veto = self._retrieval_budget(state)
        if veto is not None:
            return Action(kind=end, reasons=reasons, vetoes=(veto,), note=veto.text)
        return Action(kind="retrieve", reasons=reasons, query_source="question", note=DRAFT_ABANDONED)

    def on_sentence(self, bundle: SignalBundle, state: AnswerState) -> Action:
        """A sentence of the answer: the first rung asked for and not vetoed, else accept."""
        vetoes: list[Veto] = []
        last: tuple[Reason, ...] = ()
        for asked in LADDER:
            reasons = bundle.asking(asked, self.combine)
            if not reasons:
                continue
            rung = self._escalated(asked, state)
            veto = self._veto(rung, state)
            if veto is None:
                return self._take(rung, reasons, vetoes, state)
            vetoes.append(veto)
            last = reasons
        return self._accept(last, vetoes, state)

    # -- rules --------------------------------------------------------------------------------
    def _escalated(self, rung: Rung, state: AnswerState) -> Rung:
        """With deep search on, a sentence still doubtful after it was written again with retrieved
        passages asks for the next rung up: ``retrieve`` becomes ``deep_search``."""
        if rung == "retrieve" and self.deep is not None and state.phase is Phase.REGENERATING and not self.rest_ungated:
            return "deep_search"
        return rung

    def _veto(self, rung: Rung, state: AnswerState) -> Veto | None:
        """The first rule that refuses ``rung`` for this sentence, or ``None``."""
        if rung == "adjust":
            if state.control_on or self.control_always:
                return Veto(rule="already_controlled", rung=rung, text="already written under knowledge control")
            if state.phase is Phase.UNGATED or (state.phase is Phase.REGENERATING and self.rest_ungated):
                return self._ungated(rung)  # under "rest", the rewrite is the start of the ungated rest
            return None
        if not self.has_retriever:
            return Veto(rule="no_retriever", rung=rung, text="no retriever configured")
        if state.final and not self.check_final_sentence:
            return Veto(rule="final_unchecked", rung=rung, text="final-answer sentence is not checked")
        if rung == "deep_search" and self.deep is not None:
            if state.search_rounds >= self.deep.rounds:
                return Veto(rule="search_budget", rung=rung, text=f"deep search: {self.deep.rounds} round(s) spent")
            cap = self.deep.max_prompt_tokens
            if cap is not None and state.prompt_tokens >= cap:
                return Veto(rule="search_budget", rung=rung, text=f"deep search: {cap} prompt tokens read")
            if state.phase is Phase.REGENERATING:
                return self._retrieval_budget(state, rung)
        if state.phase in (Phase.REGENERATING, Phase.CONTROLLED):
            return Veto(rule="just_regenerated", rung=rung, text="already regenerated with retrieved passages")
        if state.phase is Phase.UNGATED:
            return self._ungated(rung)
        return self._retrieval_budget(state, rung)

    def _ungated(self, rung: Rung) -> Veto:
        return Veto(
            rule="rest_ungated", rung=rung, text="written with retrieved passages (accept_after_retrieval=rest)"
        )

    def _retrieval_budget(self, state: AnswerState, rung: Rung = "retrieve") -> Veto | None:
        if state.retrievals >= self.max_retrievals:
            return Veto(rule="retrieval_budget", rung=rung, text=f"retrieval budget of {self.max_retrievals} spent")
        return None

    def _take(self, rung: Rung, reasons: tuple[Reason, ...], vetoes: Sequence[Veto], state: AnswerState) -> Action:
        if rung == "adjust":
            c = self.control
            how = "adaptive" if c.adaptive else f"alpha={c.alpha:g}"
            note = f"knowledge control on: {how}, epsilon={c.epsilon:g}"
            return Action(kind="adjust", reasons=reasons, vetoes=tuple(vetoes), control=c, note=note)
        if rung == "deep_search" and self.deep is not None:
            n = state.search_rounds + 1
            note = f"deep search round {n} of {self.deep.rounds}"
            source = "search" if state.phase is Phase.REGENERATING else "signals"
            return Action(kind=rung, reasons=reasons, vetoes=tuple(vetoes), query_source=source, note=note)
        return Action(kind=rung, reasons=reasons, vetoes=tuple(vetoes), query_source="signals")

    def _accept(self, reasons: tuple[Reason, ...], vetoes: Sequence[Veto], state: AnswerState) -> Action:
        note = vetoes[-1].text if vetoes else None
        if state.final:
            return Action(kind="finish", reasons=reasons, vetoes=tuple(vetoes), note=note)
        follow_up = None
        if self.scheduled and self.has_retriever and state.retrievals < self.max_retrievals:
            trigger = f"scheduled after {self.segment} {state.accepted + 1}"
            follow_up = FollowUp(kind="scheduled_retrieval", query_source=self.scheduled_query, trigger=trigger)
        elif state.phase is Phase.REGENERATING and not self.keep_passages:
            follow_up = FollowUp(kind="drop_passages")
        return Action(kind="accept", reasons=reasons, vetoes=tuple(vetoes), follow_up=follow_up, note=note)


__all__ = ["DRAFT_ABANDONED", "LADDER", "Policy"]
