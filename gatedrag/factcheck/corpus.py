"""The corpus signal of a claim (what gatedrag adds to PCC): are the claim's entities in the user's
corpus, and do its heads and tails co-occur there? QuCo-RAG's two statistics
(:mod:`gatedrag.signals.corpus`) on the claim's text, before anything is generated:

- ``entity_freq``: ``-log10`` of the claim entities' mean frequency (occurrences per million corpus
  tokens; higher = rarer); fires below ``entity_tau`` per million.
- ``cooc``: the number of the claim's (head, relation, tail) triples whose head and tail never
  co-occur in one corpus document (a count; higher = less supported); fires at one.

A claim whose signal fires is one the model is likely to misjudge from memory (QuCo: rare entities,
unsupported relations), and one the corpus may not settle either; with ``routing.corpus_doubt`` it
counts as uncertain (:mod:`~gatedrag.factcheck.routing`), and the values are features of the
verdict's calibration either way. A failing backend or extractor gives values with an ``error``
that do not fire (the other signals decide; the verdict is marked degraded).

Example (with a corpus-statistics index and an extractor, as the gate's corpus rules use)::

    from gatedrag.factcheck.corpus import CorpusSignals
    signals = CorpusSignals(stats, extractor)
    [values] = signals.evaluate(["Aspirin inhibits platelet aggregation."])
    [(v.name, v.value, v.fired) for v in values]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gatedrag.corpus.base import CorpusStats
from gatedrag.corpus.extract import Extractor
from gatedrag.signals.corpus import CooccurrenceSignal, EntityFrequencySignal
from gatedrag.types import SignalValue


class ClaimSignals(Protocol):
    """Signals of claims computed from something other than the model (one list per claim)."""

    def evaluate(self, claims: Sequence[str]) -> list[list[SignalValue]]: ...


class CorpusSignals:
    """``entity_freq`` and ``cooc`` of each claim (see the module doc)."""

    def __init__(self, stats: CorpusStats, extractor: Extractor, *, entity_tau: float = 1.0, tau_cooc: int = 1):
        self.frequency = EntityFrequencySignal(stats, extractor, tau=entity_tau)
        self.cooccurrence = CooccurrenceSignal(stats, extractor, tau_cooc=tau_cooc)

    def evaluate(self, claims: Sequence[str]) -> list[list[SignalValue]]:
        frequency = self.frequency.evaluate_questions(list(claims))
        return [[f, self.cooccurrence.check_text(claim)] for f, claim in zip(frequency, claims)]


__all__ = ["ClaimSignals", "CorpusSignals"]
