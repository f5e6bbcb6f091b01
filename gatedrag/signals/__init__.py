"""Uncertainty signals (higher = more uncertain), one small class per rule."""

from gatedrag.signals.base import TokenSignal
from gatedrag.signals.sequence import GNLLSignal
from gatedrag.signals.token import EntropySignal, FlareSignal, TokenRAGSignal

__all__ = ["EntropySignal", "FlareSignal", "GNLLSignal", "TokenRAGSignal", "TokenSignal"]
