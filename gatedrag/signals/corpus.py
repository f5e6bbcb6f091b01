"""Corpus-statistics signals: QuCo-RAG's two stages on any corpus-statistics backend (anchors §1).

* :class:`EntityFrequencySignal` (Stage 1, before generation): how rare the question's entities are
  in the corpus. Value = ``-log10(aggregate frequency)`` (higher = rarer = more uncertain), the
  frequency in occurrences per million corpus tokens (``unit="per_million"``, which transfers
  across corpus sizes) or in raw counts (``unit="count"``, QuCo's absolute thresholds: 1e3 for
  2Wiki, 1e5 for HotpotQA on a 4.6T-token index, i.e. about 2.2e-4 and 2.2e-2 per million). Fires
  when the aggregate frequency is below ``tau`` (the value is above ``-log10(tau)``). A question with
  no entity gives no evidence and does not fire.
* :class:`CooccurrenceSignal` (Stage 2, per generated sentence): the sentence's (head, relation,
  tail) claims whose head and tail co-occur fewer than ``tau_cooc`` times within ``window`` tokens.
  Value = the number of such unsupported claims (a count, higher = more uncertain); fires at one
  (QuCo: ``min cooc < tau_cooc``). Reasoning sentences have no claims and pass. The retrieval query
  is QuCo's: ``head relation`` of each unsupported claim (or the full triple, or the sentence).
  Sentences with a negation or "no information" phrase are not checked (QuCo stops checking at the
  first such sentence; here only that sentence is skipped).

Every entity, count and co-occurrence that was looked up is in the trace (``details``); a failing
backend or extractor makes the signal report ``note`` and not fire, so the other signals decide.

Example::

    from gatedrag.corpus.extract import SpacyExtractor
    from gatedrag.corpus.local import LocalIndex
    from gatedrag.signals.corpus import CooccurrenceSignal
    signal = CooccurrenceSignal(LocalIndex("INDEX"), SpacyExtractor())
    signal.check_text("Ed Wood was directed by Tim Burton.")   # SignalValue(name='cooc', value=0.0, ...)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from gatedrag.corpus.base import CorpusStats
from gatedrag.corpus.extract import Extractor
from gatedrag.signals.base import Family, Need, Rung, SentenceContext, SignalBase, Stage
from gatedrag.types import SignalValue, TokenStep, Triple

NO_INFO = ("does not", "do not", "did not", "not provide", "not mention", "no information", "not known", "unknown")
"""A sentence with one of these phrases is not checked (QuCo stops verifying at such a sentence)."""

FREQ_FLOOR = 1e-9
"""Frequencies are floored here before the log (an entity absent from the corpus scores 9)."""


def rarity(frequency: float) -> float:
    """``-log10(frequency)`` with the floor: the orientation every signal uses (higher = rarer)."""
    return -math.log10(max(frequency, FREQ_FLOOR))


def _failure(name: str, threshold: float, what: str, err: BaseException) -> SignalValue:
    return SignalValue(
        name=name, value=0.0, threshold=threshold, fired=False, error=f"{what} failed: {type(err).__name__}: {err}"
    )


class EntityFrequencySignal:
    """QuCo Stage 1: fires when the question's entities are rare in the corpus (see module doc)."""

    name: ClassVar[str] = "entity_freq"
    family: ClassVar[Family] = "corpus"
    unit: ClassVar[str] = "-log10(occurrences per million tokens)"
    direction: ClassVar[Literal["higher_is_more_uncertain"]] = "higher_is_more_uncertain"
    rung: ClassVar[Rung] = "retrieve"
    stage: ClassVar[Stage] = "question"
    needs: ClassVar[frozenset[Need]] = frozenset({"corpus", "extractor"})
    threshold_param: ClassVar[str] = "tau"

    def __init__(
        self,
        stats: CorpusStats | None,
        extractor: Extractor | None,
        *,
        tau: float = 1.0,
        unit: Literal["per_million", "count"] = "per_million",
        aggregate: Literal["mean", "min", "max"] = "mean",
        act: bool = True,
    ):
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.stats, self.extractor = stats, extractor
        self.tau, self.unit, self.aggregate, self.act = tau, unit, aggregate, act
        self.threshold = rarity(tau)

    def evaluate_questions(self, questions: Sequence[str]) -> list[SignalValue]:
        """One value per question (entities extracted in one batch)."""
        if self.stats is None or self.extractor is None:
            missing = "corpus statistics backend" if self.stats is None else "entity extractor"
            return [
                SignalValue(name=self.name, value=0.0, threshold=self.threshold, note=f"no {missing} configured")
                for _ in questions
            ]
        try:
            entity_lists = self.extractor.entities(list(questions))
        except Exception as err:
            return [_failure(self.name, self.threshold, "entity extraction", err) for _ in questions]
        return [self._value(entities) for entities in entity_lists]

    def _value(self, entities: Sequence[str]) -> SignalValue:
        assert self.stats is not None
        if not entities:
            return SignalValue(name=self.name, value=0.0, threshold=self.threshold, info="no entity in the question")
        try:
            total = self.stats.total_tokens()
            counts = {e: self.stats.count(e).count for e in entities}
        except Exception as err:
            return _failure(self.name, self.threshold, "corpus backend", err)
        values = list(counts.values())
        agg = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}[self.aggregate]
        frequency = agg * 1e6 / total if self.unit == "per_million" and total else float(agg)
        value = rarity(frequency)
        details = {f"count[{e}]": float(c) for e, c in counts.items()}
        details.update({f"{self.aggregate}_count": float(agg), "corpus_tokens": float(total), "tau": self.tau})
        if self.unit == "per_million":
            details[f"{self.aggregate}_per_million"] = frequency
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=frequency < self.tau,
            details=details,
            info="entity counts: " + ", ".join(f"{e} {c}" for e, c in counts.items()),
        )


class CooccurrenceSignal(SignalBase):
    """QuCo Stage 2: fires when a claim's head and tail do not co-occur in the corpus."""

    name: ClassVar[str] = "cooc"
    family: ClassVar[Family] = "corpus"
    unit: ClassVar[str] = "unsupported claims"
    needs: ClassVar[frozenset[Need]] = frozenset({"corpus", "extractor"})
    threshold_param: ClassVar[str] = "tau_cooc"

    def __init__(
        self,
        stats: CorpusStats | None,
        extractor: Extractor | None,
        *,
        tau_cooc: int = 1,
        window: int | None = None,
        max_clause_freq: int | None = None,
        query: Literal["head_relation", "full_triplet", "sentence"] = "head_relation",
        pool: bool = True,
        act: bool = True,
    ):
        if tau_cooc < 1:
            raise ValueError(f"tau_cooc must be at least 1, got {tau_cooc}")
        self.stats, self.extractor = stats, extractor
        self.tau_cooc, self.window, self.max_clause_freq = tau_cooc, window, max_clause_freq
        self.query, self.pool, self.act = query, pool, act
        self.threshold = 0.5  # one unsupported claim is enough (QuCo uses the minimum over claims)

    def check_text(self, sentence: str) -> SignalValue:
        """The signal on a sentence given as text."""
        if self.stats is None or self.extractor is None:
            missing = "corpus statistics backend" if self.stats is None else "claim extractor"
            return SignalValue(name=self.name, value=0.0, threshold=self.threshold, note=f"no {missing} configured")
        if any(phrase in sentence.lower() for phrase in NO_INFO):
            return SignalValue(
                name=self.name,
                value=0.0,
                threshold=self.threshold,
                info="negation or no-information sentence: not checked",
            )
        try:
            (triples,) = self.extractor.triples([sentence])
        except Exception as err:
            return _failure(self.name, self.threshold, "claim extraction", err)
        if not triples:
            return SignalValue(name=self.name, value=0.0, threshold=self.threshold, info="no claim to check")
        details: dict[str, float] = {}
        unsupported: list[Triple] = []
        approx = False
        try:
            for t in triples:
                key = f"cooc[{t.head} | {t.tail}]"
                if key in details:
                    continue
                result = self.stats.cooccurrence(
                    [t.head, t.tail], window=self.window, max_clause_freq=self.max_clause_freq
                )
                details[key] = float(result.count)
                approx = approx or result.approx
                if result.count < self.tau_cooc:
                    unsupported.append(t)
        except Exception as err:
            return _failure(self.name, self.threshold, "corpus backend", err)
        details["claims"] = float(len(triples))
        details["tau_cooc"] = float(self.tau_cooc)
        if result.window is not None:
            details["window_tokens"] = float(result.window)
        shown = dict.fromkeys((t.head, t.tail) for t in triples)
        info = "co-occurrences: " + "; ".join(
            f"{h} | {t}: {details[f'cooc[{h} | {t}]']:.0f}"
            + (" (unsupported)" if any(u.head == h and u.tail == t for u in unsupported) else "")
            for h, t in shown
        )
        if approx:
            info += "; some counts are approximate (a term above max_clause_freq was subsampled)"
        return SignalValue(
            name=self.name,
            value=float(len(unsupported)),
            threshold=self.threshold,
            fired=bool(unsupported),
            details=details,
            info=info,
            queries=self._queries(unsupported),
        )

    def _queries(self, claims: Sequence[Triple]) -> list[str]:
        """QuCo's queries: ``head relation`` (or the full triple) of each unsupported claim, each
        retrieved on its own and the passages pooled (``pool=False``: one joined query); none
        with ``query: sentence`` (the sentence itself is asked)."""
        if self.query == "sentence" or not claims:
            return []
        parts: list[str] = []
        for t in claims:
            text = f"{t.head} {t.relation}" if self.query == "head_relation" else f"{t.head} {t.relation} {t.tail}"
            if text not in parts:
                parts.append(text)
        return parts if self.pool else [" ".join(parts)]

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        return self.check_text("".join(t.text for t in tokens).strip())

    def formulate_queries(self, tokens: Sequence[TokenStep], value: SignalValue, context: SentenceContext) -> list[str]:
        """The queries ``value`` carries (its unsupported claims'); the sentence itself when it
        carries none."""
        sentence = "".join(t.text for t in tokens).strip()
        return list(value.queries) or ([sentence] if sentence else [])


__all__ = ["FREQ_FLOOR", "CooccurrenceSignal", "EntityFrequencySignal", "rarity"]
