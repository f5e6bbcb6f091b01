"""What every token-distribution signal provides.

A signal reads the per-token distributions of one sentence (:class:`~gatedrag.types.TokenStep`,
already computed while decoding) and returns a :class:`~gatedrag.types.SignalValue` oriented so
that **higher = more uncertain**, together with whether it crossed its own threshold and the
tokens it blames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from gatedrag.types import SignalValue, Span, TokenStep

Family = Literal["token", "sequence", "attention", "corpus", "context", "consistency"]
"""Where a signal's evidence comes from: the token distribution, the whole sentence's likelihood,
the model's attention, corpus statistics, how retrieved context shifts the model, agreement."""
Rung = Literal["retrieve", "deep_search", "adjust"]
"""What a fired signal asks the policy for: retrieval, deeper search, or knowledge-reliance control."""
Stage = Literal["question", "sentence"]
"""When a signal is read: on the question before generating, or on every generated sentence."""
Need = Literal["logprobs", "context", "attention", "corpus", "extractor", "twin"]
"""What a signal reads: the tokens' log-probabilities (every token-distribution signal), the answer
so far, the model's attention, a corpus-statistics backend, an entity/claim extractor, a
no-context twin decoded alongside."""


@runtime_checkable
class Signal(Protocol):
    """An uncertainty signal, with what the gate, the config, tuning and reports need to know of it.

    Class attributes declare the signal (one registration in :mod:`gatedrag.signals.registry`
    makes it usable from a config): ``name``; ``family``; ``unit`` of its value; ``rung`` it asks
    for when it fires; ``stage`` it is read at; ``needs``; ``threshold_param``, the rule field that
    sets its threshold; ``direction``, always "higher_is_more_uncertain": every value is oriented
    so that higher = more uncertain. ``act`` (from its
    rule) says whether it may trigger an action or is only traced.
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    unit: ClassVar[str]
    direction: ClassVar[Literal["higher_is_more_uncertain"]]
    rung: ClassVar[Rung]
    stage: ClassVar[Stage]
    needs: ClassVar[frozenset[Need]]
    threshold_param: ClassVar[str]
    act: bool

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        """The signal's value on this sentence (higher = more uncertain)."""
        ...

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]:
        """Indices of the tokens to leave out of a retrieval query built from this sentence."""
        ...

    def formulate_queries(self, tokens: Sequence[TokenStep], value: SignalValue, context: SentenceContext) -> list[str]:
        """The signal's own retrieval queries for a sentence it fired on (DRAGIN's QFS, QuCo's claim
        queries); empty: query with the sentence, its doubtful tokens masked."""
        ...


@runtime_checkable
class QuestionSignal(Protocol):
    """A signal read on the question before generating (``stage = "question"``)."""

    name: ClassVar[str]
    rung: ClassVar[Rung]
    act: bool

    def evaluate_questions(self, questions: Sequence[str]) -> list[SignalValue]:
        """One value per question (higher = more uncertain)."""
        ...


class SignalBase:
    """Defaults for a sentence signal: token family, asks for retrieval, reads only the tokens'
    log-probabilities, masks nothing, formulates no query of its own."""

    name: ClassVar[str]
    family: ClassVar[Family] = "token"
    unit: ClassVar[str] = ""
    direction: ClassVar[Literal["higher_is_more_uncertain"]] = "higher_is_more_uncertain"
    rung: ClassVar[Rung] = "retrieve"
    stage: ClassVar[Stage] = "sentence"
    needs: ClassVar[frozenset[Need]] = frozenset({"logprobs"})
    threshold_param: ClassVar[str] = "threshold"
    act: bool = True

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]:
        return set()

    def formulate_queries(self, tokens: Sequence[TokenStep], value: SignalValue, context: SentenceContext) -> list[str]:
        return []


@runtime_checkable
class AttentionModel(Protocol):
    """A model that can show where it looks: what attention-based signals (RIND, QFS) need. Its
    ``capabilities.attention`` (:class:`~gatedrag.lm.base.ModelCapabilities`) says it can."""

    capabilities: Any

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def attention(self, ids: Sequence[int]) -> Any:
        """Last-layer self-attention over ``ids``, averaged over heads: an ``[n, n]`` array whose row
        ``j`` is how much token ``j`` attends to each token ``i <= j`` (rows sum to 1)."""
        ...


@dataclass(frozen=True)
class SentenceContext:
    """What a signal may look at beyond the sentence's own tokens.

    ``answer_ids`` are the accepted answer tokens before the sentence; the model's current decoding
    call started at ``answer_ids[segment_start:]`` (DRAGIN scores attention within that call).
    """

    question: str = ""
    answer_ids: Sequence[int] = field(default_factory=tuple)
    segment_start: int = 0
    model: Any = None


def span_of(tokens: Sequence[TokenStep], indices: Sequence[int]) -> Span | None:
    """The smallest span covering ``indices`` (``None`` when empty)."""
    if not indices:
        return None
    start, end = min(indices), max(indices) + 1
    return Span(start=start, end=end, text="".join(t.text for t in tokens[start:end]).strip())


__all__ = [
    "AttentionModel",
    "Family",
    "Need",
    "QuestionSignal",
    "Rung",
    "SentenceContext",
    "Signal",
    "SignalBase",
    "Stage",
    "span_of",
]
