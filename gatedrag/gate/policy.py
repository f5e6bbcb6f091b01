"""The gate: signal values and thresholds in, a typed :class:`~gatedrag.types.Decision` out.

Example:
    >>> import math
    >>> from gatedrag.config import GateConfig, TokenRAGRule
    >>> from gatedrag.gate import Gate
    >>> from gatedrag.types import TokenStep
    >>> gate = Gate(GateConfig(rules=[TokenRAGRule(theta=0.1)]))
    >>> toks = [TokenStep(token_id=1, text=" 1789", logprob=math.log(0.5), entropy=2.0)]
    >>> values, decision = gate.evaluate(toks)
    >>> decision.action, decision.reasons[0].signal, decision.reasons[0].value
    ('retrieve', 'token_rag', 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatedrag.config import (
    ConfidenceGainRule,
    CooccurrenceRule,
    EntityFrequencyRule,
    EntropyRule,
    FlareRule,
    GateConfig,
    GNLLRule,
    RINDRule,
    SignalRule,
    TokenRAGRule,
)
from gatedrag.retrieval.query import build_query, truncate_words
from gatedrag.signals import EntropySignal, FlareSignal, GNLLSignal, RINDSignal, TokenRAGSignal, TokenSignal
from gatedrag.signals.base import SentenceContext
from gatedrag.types import Decision, Reason, SignalValue, TokenStep


def build_signal(rule: SignalRule, *, corpus: Any = None, extractor: Any = None) -> TokenSignal:
    """The signal object a config rule describes; corpus signals read ``corpus`` (a
    :class:`~gatedrag.corpus.base.CorpusStats`) and ``extractor`` (without them they are traced as
    unavailable and never fire)."""
    if isinstance(rule, ConfidenceGainRule):
        from gatedrag.signals.gain import ConfidenceGainSignal

        return ConfidenceGainSignal(threshold=rule.threshold, act=rule.act)  # type: ignore[return-value]
    if isinstance(rule, EntityFrequencyRule):
        from gatedrag.signals.corpus import EntityFrequencySignal

        return EntityFrequencySignal(  # type: ignore[return-value]
            corpus, extractor, tau=rule.tau, unit=rule.unit, aggregate=rule.aggregate, act=rule.act
        )
    if isinstance(rule, CooccurrenceRule):
        from gatedrag.signals.corpus import CooccurrenceSignal

        return CooccurrenceSignal(  # type: ignore[return-value]
            corpus,
            extractor,
            tau_cooc=rule.tau_cooc,
            window=rule.window,
            max_clause_freq=rule.max_clause_freq,
            query=rule.query,
            pool=rule.pool,
            act=rule.act,
        )
    if isinstance(rule, FlareRule):
        return FlareSignal(theta=rule.theta, beta=rule.beta, act=rule.act)
    if isinstance(rule, TokenRAGRule):
        return TokenRAGSignal(theta=rule.theta, act=rule.act)
    if isinstance(rule, GNLLRule):
        return GNLLSignal(threshold=rule.threshold, normalize=rule.normalize, act=rule.act)
    if isinstance(rule, EntropyRule):
        return EntropySignal(threshold=rule.threshold, aggregate=rule.aggregate, act=rule.act)
    if isinstance(rule, RINDRule):
        return RINDSignal(
            theta=rule.theta,
            stopwords=rule.stopwords,
            query_words=rule.query_words,
            query_order=rule.query_order,
            act=rule.act,
        )
    raise TypeError(f"unknown signal rule {rule!r}")


class Gate:
    """Computes every configured signal on a sentence and decides accept / retrieve.

    Signals whose rule has ``act=False`` (or no threshold) are computed and traced but never
    trigger. With ``combine="any"`` one acting signal over its threshold retrieves; with ``"all"``
    every acting signal must be over.
    """

    def __init__(
        self,
        config: GateConfig | None = None,
        signals: Sequence[TokenSignal] | None = None,
        *,
        corpus: Any = None,
        extractor: Any = None,
    ):
        self.config = config or GateConfig()
        built: list[Any] = (
            list(signals)
            if signals is not None
            else [build_signal(r, corpus=corpus, extractor=extractor) for r in self.config.rules]
        )
        self.question_signals = [s for s in built if getattr(s, "stage", "sentence") == "question"]
        self.signals: list[TokenSignal] = [s for s in built if getattr(s, "stage", "sentence") != "question"]

    def _acting(self, signal: TokenSignal, value: SignalValue) -> bool:
        return bool(getattr(signal, "act", True)) and value.threshold is not None

    @property
    def needs_context(self) -> bool:
        """Whether a signal reads more than the sentence's tokens (e.g. the model's attention)."""
        return any(getattr(s, "needs_context", False) for s in self.signals)

    def evaluate(
        self, tokens: Sequence[TokenStep], context: SentenceContext | None = None
    ) -> tuple[list[SignalValue], Decision]:
        values = [
            s.evaluate(tokens, context) if getattr(s, "needs_context", False) else s.evaluate(tokens)  # type: ignore[call-arg]
            for s in self.signals
        ]
        return values, self._decide(self.signals, values)

    def evaluate_questions(self, questions: Sequence[str]) -> list[tuple[list[SignalValue], Decision]]:
        """The question-stage signals (QuCo Stage 1) on each question: ``retrieve`` means retrieve
        with the question before generating. Empty values and ``accept`` when none is configured."""
        per_signal = [s.evaluate_questions(questions) for s in self.question_signals]  # type: ignore[attr-defined]
        out = []
        for i in range(len(questions)):
            values = [vals[i] for vals in per_signal]
            out.append((values, self._decide(self.question_signals, values)))
        return out

    def _decide(self, signals: Sequence[Any], values: list[SignalValue]) -> Decision:
        for s, v in zip(signals, values):
            v.acting = self._acting(s, v)

        def reasons(pairs: list[tuple[Any, SignalValue]]) -> list[Reason]:
            return [
                Reason(signal=v.name, value=v.value, threshold=float(v.threshold), span=v.span)  # type: ignore[arg-type]
                for _, v in pairs
            ]

        acting = [(s, v) for s, v in zip(signals, values) if v.acting]
        adjusting = [(s, v) for s, v in acting if getattr(s, "action", "retrieve") == "adjust"]
        acting = [(s, v) for s, v in acting if getattr(s, "action", "retrieve") != "adjust"]
        fired = [(s, v) for s, v in acting if v.fired]
        if fired and (self.config.combine == "any" or len(fired) == len(acting)):
            return Decision(action="retrieve", reasons=reasons(fired))
        conflicting = [(s, v) for s, v in adjusting if v.fired]
        if conflicting:  # the "adjust" rung: passages and memory disagree; re-mix the logits
            return Decision(action="adjust", reasons=reasons(conflicting))
        return Decision(action="accept")

    def query(
        self,
        tokens: Sequence[TokenStep],
        decision: Decision,
        values: Sequence[SignalValue],
        context: SentenceContext,
        *,
        max_words: int = 64,
    ) -> str:
        """The retrieval query for a rejected sentence: the first fired signal's own formulation if
        it has one (DRAGIN's QFS), else the sentence with that signal's doubtful tokens masked;
        truncated to its last ``max_words`` words. (Several queries are joined; see :meth:`queries`.)"""
        return " ".join(self.queries(tokens, decision, values, context, max_words=max_words))

    def queries(
        self,
        tokens: Sequence[TokenStep],
        decision: Decision,
        values: Sequence[SignalValue],
        context: SentenceContext,
        *,
        max_words: int = 64,
        include_question: bool = False,
        previous: str = "",
    ) -> list[str]:
        """Like :meth:`query`, but a signal may ask for several queries whose passages are pooled
        (QuCo-RAG: one query per unsupported claim). ``include_question`` and ``previous`` (earlier
        sentences of the answer) go before the masked sentence, not before a query a signal
        formulated itself."""
        by_name = {v.name: v for v in values}
        for reason in decision.reasons:
            for s in self.signals:
                if s.name != reason.signal or reason.signal not in by_name:
                    continue
                several = getattr(s, "formulate_queries", None)
                if several is not None:
                    found = [
                        truncate_words(q, max_words) for q in several(tokens, by_name[reason.signal], context) if q
                    ]
                    if found:
                        return found
                formulate = getattr(s, "formulate_query", None)
                if formulate is not None:
                    query = formulate(tokens, by_name[reason.signal], context)
                    if query:
                        return [truncate_words(query, max_words)]
        mask = self.query_mask(tokens, decision)
        return [
            build_query(
                context.question,
                tokens,
                mask,
                max_words=max_words,
                include_question=include_question,
                previous=previous,
            )
        ]

    def query_mask(self, tokens: Sequence[TokenStep], decision: Decision) -> set[int]:
        """Tokens to drop from the query: the mask of the first signal that fired."""
        for reason in decision.reasons:
            for s in self.signals:
                if s.name == reason.signal:
                    return s.query_mask(tokens)
        return set()


__all__ = ["Gate", "build_signal"]
