"""Which signal a config rule builds: one registration per signal.

A registration ties a rule (the config model a user writes, named by its ``signal`` field) to the
signal it builds; the signal class declares everything else (family, unit, rung, stage, needs,
threshold parameter, see :class:`~gatedrag.signals.base.Signal`).

Example:
    >>> from gatedrag.config import TokenRAGRule
    >>> from gatedrag.signals.registry import build_signal, signal_class
    >>> signal_class("token_rag").family, build_signal(TokenRAGRule(threshold=0.2)).threshold
    ('token', 0.2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gatedrag.config import (
    ConfidenceGainRule,
    CooccurrenceRule,
    EntityFrequencyRule,
    EntropyRule,
    FlareRule,
    GNLLRule,
    RINDRule,
    TokenRAGRule,
    register_rule,
)
from gatedrag.signals.attention import RINDSignal
from gatedrag.signals.base import Need, Rung
from gatedrag.signals.corpus import CooccurrenceSignal, EntityFrequencySignal
from gatedrag.signals.gain import ConfidenceGainSignal
from gatedrag.signals.sequence import GNLLSignal
from gatedrag.signals.token import EntropySignal, FlareSignal, TokenRAGSignal

Builder = Callable[[Any, Any, Any], Any]
"""``build(rule, corpus, extractor) -> signal``."""


@dataclass(frozen=True)
class Registration:
    rule: type
    signal: type
    build: Builder


REGISTRY: dict[str, Registration] = {}


def register(rule: type, signal: type, build: Builder | None = None) -> None:
    """Make ``signal`` buildable from ``rule`` (a config model whose ``signal`` field names it).
    ``build`` defaults to ``signal(**rule fields but "signal")``."""
    name = signal.name
    if rule.model_fields["signal"].default != name:
        raise ValueError(f"rule {rule.__name__} names signal {rule.model_fields['signal'].default!r}, not {name!r}")
    if rule.threshold_param != signal.threshold_param:
        raise ValueError(
            f"{name}: the rule's threshold parameter is {rule.threshold_param!r}, the signal's {signal.threshold_param!r}"
        )
    register_rule(rule)

    def default(r: Any, corpus: Any, extractor: Any) -> Any:
        return signal(**r.model_dump(exclude={"signal"}))

    REGISTRY[name] = Registration(rule=rule, signal=signal, build=build or default)


def signal_class(name: str) -> type:
    """The signal class registered under ``name``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown signal {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name].signal


def needs_of(names: Iterable[str]) -> frozenset[Need]:
    """What the signals named ``names`` read beyond a sentence's tokens, together."""
    return frozenset().union(*(signal_class(n).needs for n in names))


def rungs_of(names: Iterable[str]) -> frozenset[Rung]:
    """The rungs the signals named ``names`` may ask for."""
    return frozenset(signal_class(n).rung for n in names)


def build_signal(rule: Any, *, corpus: Any = None, extractor: Any = None) -> Any:
    """The signal object a config rule describes; corpus signals read ``corpus`` (a
    :class:`~gatedrag.corpus.base.CorpusStats`) and ``extractor`` (without them they are traced as
    unavailable and never fire)."""
    return REGISTRY[rule.signal].build(rule, corpus, extractor)


def _corpus(signal: type) -> Builder:
    return lambda r, corpus, extractor: signal(corpus, extractor, **r.model_dump(exclude={"signal"}))


register(FlareRule, FlareSignal)
register(TokenRAGRule, TokenRAGSignal)
register(GNLLRule, GNLLSignal)
register(EntropyRule, EntropySignal)
register(RINDRule, RINDSignal)
register(EntityFrequencyRule, EntityFrequencySignal, _corpus(EntityFrequencySignal))
register(CooccurrenceRule, CooccurrenceSignal, _corpus(CooccurrenceSignal))
register(ConfidenceGainRule, ConfidenceGainSignal)

__all__ = ["REGISTRY", "Registration", "build_signal", "needs_of", "register", "rungs_of", "signal_class"]
