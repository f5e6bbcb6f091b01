"""The gate's signals: computed on each sentence (and question) into a :class:`SignalBundle`, and
the retrieval queries of a doubtful sentence.

Example:
    >>> import math
    >>> from gatedrag.config import GateConfig, TokenRAGRule
    >>> from gatedrag.gate import Gate
    >>> from gatedrag.types import TokenStep
    >>> gate = Gate(GateConfig(rules=[TokenRAGRule(threshold=0.1)]))
    >>> bundle = gate.evaluate([TokenStep(token_id=1, text=" 1789", logprob=math.log(0.5), entropy=2.0)])
    >>> reason = bundle.asking("retrieve")[0]
    >>> reason.signal, reason.value
    ('token_rag', 0.5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gatedrag.config import GateConfig
from gatedrag.gate.bundle import SignalBundle
from gatedrag.retrieval.query import build_query, truncate_words
from gatedrag.signals.base import Need, QuestionSignal, SentenceContext, Signal
from gatedrag.signals.registry import build_signal
from gatedrag.types import Reason, SignalValue, TokenStep

NO_LOGPROBS = "the model returns no token log-probabilities: not computed"


class Gate:
    """Computes every configured signal; signals whose rule has ``act=False`` (or that have no
    threshold) are computed and traced but never ask for anything. ``signals`` replaces the
    configured rules with ready signal objects (question-stage ones are told apart by ``stage``)."""

    def __init__(
        self,
        config: GateConfig | None = None,
        signals: Sequence[Signal | QuestionSignal] | None = None,
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
        self.question_signals: list[QuestionSignal] = [s for s in built if s.stage == "question"]
        self.signals: list[Signal] = [s for s in built if s.stage != "question"]

    @property
    def needs(self) -> frozenset[Need]:
        """What the sentence signals read beyond the tokens."""
        return frozenset().union(*(s.needs for s in self.signals))

    def _bundle(self, signals: Sequence[Any], values: Sequence[SignalValue]) -> SignalBundle:
        acting = [v.model_copy(update={"acting": s.act and v.threshold is not None}) for s, v in zip(signals, values)]
        return SignalBundle(values=tuple(acting), rungs=tuple(s.rung for s in signals))

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalBundle:
        """Every sentence signal on ``tokens``; one that reads log-probabilities the context's model
        does not return is traced as unavailable (and never fires)."""
        blind = context is not None and context.model is not None and not context.model.capabilities.logprobs
        values = [
            SignalValue(name=s.name, value=0.0, note=NO_LOGPROBS)
            if blind and "logprobs" in s.needs
            else _safely(s.name, lambda s=s: s.evaluate(tokens, context))
            for s in self.signals
        ]
        return self._bundle(self.signals, values)

    def evaluate_questions(self, questions: Sequence[str]) -> list[SignalBundle]:
        """The question-stage signals (QuCo Stage 1) on each question (empty bundles when none is configured)."""
        per_signal = [
            _safely_each(s.name, len(questions), lambda s=s: s.evaluate_questions(questions))
            for s in self.question_signals
        ]
        return [self._bundle(self.question_signals, [vals[i] for vals in per_signal]) for i in range(len(questions))]

    def queries(
        self,
        tokens: Sequence[TokenStep],
        reasons: Sequence[Reason],
        bundle: SignalBundle,
        context: SentenceContext,
        *,
        max_words: int = 64,
        include_question: bool = False,
        previous: str = "",
    ) -> list[str]:
        """The retrieval queries for a doubtful sentence: the first fired signal's own (DRAGIN's QFS,
        QuCo-RAG's one query per unsupported claim, passages pooled), else the sentence with that
        signal's doubtful tokens masked, after the question (``include_question``) and ``previous``
        (earlier sentences of the answer). Each truncated to its last ``max_words`` words."""
        by_name = {v.name: v for v in bundle.values}
        for reason in reasons:
            for s in self.signals:
                if s.name == reason.signal and reason.signal in by_name:
                    found = [
                        truncate_words(q, max_words) for q in s.formulate_queries(tokens, by_name[s.name], context) if q
                    ]
                    if found:
                        return found
        return [
            build_query(
                context.question,
                tokens,
                self.query_mask(tokens, reasons),
                max_words=max_words,
                include_question=include_question,
                previous=previous,
            )
        ]

    def query_mask(self, tokens: Sequence[TokenStep], reasons: Sequence[Reason]) -> set[int]:
        """Tokens to drop from the query: the mask of the first signal that fired."""
        for reason in reasons:
            for s in self.signals:
                if s.name == reason.signal:
                    return s.query_mask(tokens)
        return set()


def _safely(name: str, evaluate: Callable[[], SignalValue]) -> SignalValue:
    """A signal's value, or one carrying its error if computing it raised (the gate goes on
    without it; the pipeline marks the answer degraded)."""
    try:
        value = evaluate()
    except Exception as err:
        return SignalValue(name=name, value=0.0, error=f"the signal failed: {type(err).__name__}: {err}")
    if not isinstance(value, SignalValue):
        return SignalValue(name=name, value=0.0, error=f"the signal returned {type(value).__name__}, not a value")
    return value


def _safely_each(name: str, n: int, evaluate: Callable[[], list[SignalValue]]) -> list[SignalValue]:
    """One value per question from a question-stage signal, as :func:`_safely` does for one."""
    try:
        values = evaluate()
    except Exception as err:
        return [SignalValue(name=name, value=0.0, error=f"the signal failed: {type(err).__name__}: {err}")] * n
    if not isinstance(values, list) or len(values) != n:
        return [SignalValue(name=name, value=0.0, error=f"the signal returned no value for each of {n} questions")] * n
    return [_safely(name, lambda v=v: v) for v in values]


__all__ = ["NO_LOGPROBS", "Gate"]
