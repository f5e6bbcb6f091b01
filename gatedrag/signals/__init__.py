"""Uncertainty signals (higher = more uncertain), one small class per rule."""

from gatedrag.signals.attention import RINDSignal
from gatedrag.signals.base import QuestionSignal, SentenceContext, Signal, SignalBase
from gatedrag.signals.sequence import GNLLSignal
from gatedrag.signals.token import EntropySignal, FlareSignal, TokenRAGSignal

__all__ = [
    "EntropySignal",
    "FlareSignal",
    "GNLLSignal",
    "QuestionSignal",
    "RINDSignal",
    "SentenceContext",
    "Signal",
    "SignalBase",
    "TokenRAGSignal",
]
