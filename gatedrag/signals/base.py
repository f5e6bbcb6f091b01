"""What every token-distribution signal provides.

A signal reads the per-token distributions of one sentence (:class:`~gatedrag.types.TokenStep`,
already computed while decoding) and returns a :class:`~gatedrag.types.SignalValue` oriented so
that **higher = more uncertain**, together with whether it crossed its own threshold and the
tokens it blames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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


def span_of(tokens: Sequence[TokenStep], indices: Sequence[int]) -> Span | None:
    """The smallest span covering ``indices`` (``None`` when empty)."""
    if not indices:
        return None
    start, end = min(indices), max(indices) + 1
    return Span(start=start, end=end, text="".join(t.text for t in tokens[start:end]).strip())


__all__ = ["TokenSignal", "span_of"]
