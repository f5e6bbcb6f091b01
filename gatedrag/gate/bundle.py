"""The signal values of one sentence (or question), each with the rung it may ask for.

Example:
    >>> from gatedrag.gate.bundle import SignalBundle
    >>> from gatedrag.types import SignalValue
    >>> b = SignalBundle(values=(SignalValue(name="token_rag", value=0.3, threshold=0.1, fired=True),), rungs=("retrieve",))
    >>> [r.signal for r in b.asking("retrieve", "any")], b.asking("adjust", "any")
    (['token_rag'], ())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gatedrag.signals.base import Rung
from gatedrag.types import Reason, SignalValue


@dataclass(frozen=True)
class SignalBundle:
    """Every signal value computed on a sentence, in configuration order, with each signal's rung.

    A value with ``acting=False`` (its rule does not act, or it has no threshold) is traced only.
    """

    values: tuple[SignalValue, ...] = ()
    rungs: tuple[Rung, ...] = ()

    def asking(self, rung: Rung, combine: Literal["any", "all"] = "any") -> tuple[Reason, ...]:
        """The reasons ``rung`` is asked for (empty: it is not). The adjust rung is asked for by any
        of its fired signals; the retrieval rungs by any, or with ``combine="all"`` only when every
        acting signal of the rung fired."""
        acting = [v for v, r in zip(self.values, self.rungs) if r == rung and v.acting]
        fired = [v for v in acting if v.fired]
        if not fired or (rung != "adjust" and combine == "all" and len(fired) < len(acting)):
            return ()
        return tuple(
            Reason(signal=v.name, value=v.value, threshold=float(v.threshold), span=v.span)  # type: ignore[arg-type]
            for v in fired
        )

    def with_traced(self, other: SignalBundle) -> SignalBundle:
        """This bundle followed by the values of ``other`` not in it, traced only (a draft's judges
        first, then the main gate's signals for the record)."""
        names = {v.name for v in self.values}
        extra = [(v, r) for v, r in zip(other.values, other.rungs) if v.name not in names]
        return SignalBundle(
            values=self.values + tuple(v.model_copy(update={"acting": False}) for v, _ in extra),
            rungs=self.rungs + tuple(r for _, r in extra),
        )


__all__ = ["SignalBundle"]
