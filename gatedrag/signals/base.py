"""What every token-distribution signal provides.

A signal reads the per-token distributions of one sentence (:class:`~gatedrag.types.TokenStep`,
already computed while decoding) and returns a :class:`~gatedrag.types.SignalValue` oriented so
that **higher = more uncertain**, together with whether it crossed its own threshold and the
tokens it blames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gatedrag.types import SignalValue, Span, TokenStep


@runtime_checkable
class TokenSignal(Protocol):
    """A signal computed from a sentence's token distributions."""

    name: str

    def evaluate(self, tokens: Sequence[TokenStep]) -> SignalValue:
        """The signal's value on this sentence (higher = more uncertain)."""
        ...

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]:
        """Indices of the tokens to leave out of a retrieval query built from this sentence."""
        ...


@runtime_checkable
class AttentionModel(Protocol):
    """A model that can show where it looks: what attention-based signals (RIND, QFS) need."""

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


@runtime_checkable
class ContextSignal(Protocol):
    """A signal that needs a :class:`SentenceContext` (e.g. attention) and may formulate its own
    retrieval query."""

    name: str
    needs_context: bool

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue: ...

    def query_mask(self, tokens: Sequence[TokenStep]) -> set[int]: ...

    def formulate_query(
        self, tokens: Sequence[TokenStep], value: SignalValue, context: SentenceContext
    ) -> str | None: ...


def span_of(tokens: Sequence[TokenStep], indices: Sequence[int]) -> Span | None:
    """The smallest span covering ``indices`` (``None`` when empty)."""
    if not indices:
        return None
    start, end = min(indices), max(indices) + 1
    return Span(start=start, end=end, text="".join(t.text for t in tokens[start:end]).strip())


__all__ = ["AttentionModel", "ContextSignal", "SentenceContext", "TokenSignal", "span_of"]
