"""Uncertainty signals (higher = more uncertain), one small class per rule."""

from gatedrag.signals.attention import RINDSignal
from gatedrag.signals.base import ContextSignal, SentenceContext, TokenSignal
from gatedrag.signals.sequence import GNLLSignal
from gatedrag.signals.token import EntropySignal, FlareSignal, TokenRAGSignal

__all__ = [
    "ContextSignal",
    "EntropySignal",
    "FlareSignal",
    "GNLLSignal",
    "RINDSignal",
    "SentenceContext",
    "TokenRAGSignal",
    "TokenSignal",
]
