"""The sentences of an evidence passage that bear on a verdict (SciFact's rationale sentences).

A passage's sentences come from a :data:`SentenceSource`: the corpus's own (SciFact's official
format lists each abstract's sentences, and its indices are the ones to report) or, by default,
the passage text cut at sentence ends. The sentences that share the most content words with the
claim are the candidates (a judged sentence costs a forward pass: an abstract has ten or more);
each candidate is then judged alone as evidence for the claim, all of them in one batched pass, and
the candidates whose own verdict is the claim's verdict are its rationale, the surest first.

Example:
    >>> split_sentences("Aspirin blocks COX-1 in 2.5 h. It thins blood. Dr. Smith agrees.")
    ['Aspirin blocks COX-1 in 2.5 h.', 'It thins blood.', 'Dr. Smith agrees.']
    >>> candidate_sentences("Aspirin thins blood.", ["Dogs bark.", "Aspirin is old.", "It thins blood."], 2)
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from gatedrag.factcheck.certainty import Label
from gatedrag.factcheck.verdict import VerdictCheck, judge
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.sentences import find_sentence_end
from gatedrag.signals.words import clean_word, is_content_word
from gatedrag.types import Passage

SentenceSource = Callable[[Passage], list[str]]
"""A passage's sentences, in the order its indices count."""


class NamedSentences(NamedTuple):
    """One request's rationale sentences: per evidence passage, the indices named; and how many
    sentences were judged (each a prompt)."""

    sentences: list[list[int]]
    judged: int


def split_sentences(text: str) -> list[str]:
    """``text`` cut at its sentence ends (the default :data:`SentenceSource`'s rule)."""
    out, rest = [], text.strip()
    while rest:
        end = find_sentence_end(rest + " ")
        if end is None or end >= len(rest):
            out.append(rest)
            break
        out.append(rest[:end].strip())
        rest = rest[end:].strip()
    return [s for s in out if s]


def passage_sentences(passage: Passage) -> list[str]:
    """The default source: the passage's text cut at sentence ends."""
    return split_sentences(passage.text)


def _content(text: str) -> set[str]:
    return {clean_word(w).lower() for w in text.split() if is_content_word(w)}


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _content(text)}


def evidence_overlap(claim: str, passages: Sequence[Passage]) -> float:
    """The share of the claim's content words (compared by their first five letters, so that
    "increases" meets "increased") found anywhere in the passages' titles and texts: 0 to 1; 1 for a
    claim without content words.

    >>> p = Passage(id="1", title="Folate", text="Folate deficiency raised plasma homocysteine.")
    >>> round(evidence_overlap("Folate deficiency increases homocysteine levels.", [p]), 2)
    0.6
    """
    words = _stems(claim)
    if not words:
        return 1.0
    found = set().union(*(_stems(f"{p.title} {p.text}") for p in passages)) if passages else set()
    return len(words & found) / len(words)


def candidate_sentences(claim: str, sentences: Sequence[str], n: int) -> list[int]:
    """The indices of the ``n`` sentences sharing the most content words with the claim (ties: the
    earlier first); sentences sharing none are never candidates."""
    words = _content(claim)
    overlap = [(len(words & _content(s)), i) for i, s in enumerate(sentences)]
    return [i for k, i in sorted(overlap, key=lambda x: (-x[0], x[1])) if k][:n]


def rationale_sentences(
    lm: LanguageModel,
    requests: Sequence[tuple[str, Label, Sequence[Passage]]],
    *,
    source: SentenceSource = passage_sentences,
    per_passage: int = 3,
    passages: int | None = None,
    candidates: int | None = None,
) -> list[NamedSentences]:
    """For each (claim, verdict label, evidence passages): per passage, the indices of at most
    ``per_passage`` sentences whose verdict alone is the label (surest first); one batched pass for
    every candidate sentence of every request. Only the first ``passages`` passages (all: ``None``)
    and each one's ``candidates`` sentences closest to the claim (all: ``None``) are judged. A
    ``nei`` verdict has no rationale sentences."""
    checks: list[VerdictCheck] = []
    where: list[tuple[int, int, int]] = []  # (request, passage, sentence)
    for r, (claim, label, evidence) in enumerate(requests):
        if label == "nei":
            continue
        for p, passage in enumerate(evidence[:passages]):
            texts = source(passage)
            picked = range(len(texts)) if candidates is None else candidate_sentences(claim, texts, candidates)
            for s in picked:
                checks.append(VerdictCheck(claim=claim, passages=[passage.model_copy(update={"text": texts[s]})]))
                where.append((r, p, s))
    out: list[list[list[int]]] = [[[] for _ in ev] for _, _, ev in requests]
    scored: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for (r, p, s), certainty in zip(where, judge(lm, checks)):
        label = requests[r][1]
        if certainty.label == label:
            scored.setdefault((r, p), []).append((certainty.probability(label), s))
    for (r, p), found in scored.items():
        out[r][p] = [s for _, s in sorted(found, key=lambda x: (-x[0], x[1]))[:per_passage]]
    judged = [0] * len(requests)
    for r, _, _ in where:
        judged[r] += 1
    return [NamedSentences(sentences=o, judged=j) for o, j in zip(out, judged)]


__all__ = [
    "NamedSentences",
    "SentenceSource",
    "candidate_sentences",
    "evidence_overlap",
    "passage_sentences",
    "rationale_sentences",
    "split_sentences",
]
