"""The sentences of an evidence passage that bear on a verdict (SciFact's rationale sentences).

A passage's sentences come from a :data:`SentenceSource`: the corpus's own (SciFact's official
format lists each abstract's sentences, and its indices are the ones to report) or, by default,
the passage text cut at sentence ends. Each sentence is then judged alone as evidence for the
claim, all of them in one batched pass, and the sentences whose own verdict is the claim's verdict
are its rationale, the surest first.

Example:
    >>> split_sentences("Aspirin blocks COX-1 in 2.5 h. It thins blood. Dr. Smith agrees.")
    ['Aspirin blocks COX-1 in 2.5 h.', 'It thins blood.', 'Dr. Smith agrees.']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gatedrag.factcheck.certainty import Label
from gatedrag.factcheck.verdict import VerdictCheck, judge
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.sentences import find_sentence_end
from gatedrag.types import Passage

SentenceSource = Callable[[Passage], list[str]]
"""A passage's sentences, in the order its indices count."""


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


def rationale_sentences(
    lm: LanguageModel,
    requests: Sequence[tuple[str, Label, Sequence[Passage]]],
    *,
    source: SentenceSource = passage_sentences,
    per_passage: int = 3,
) -> list[list[list[int]]]:
    """For each (claim, verdict label, evidence passages): per passage, the indices of at most
    ``per_passage`` sentences whose verdict alone is the label (surest first); one batched pass for
    every sentence of every request. A ``nei`` verdict has no rationale sentences."""
    checks: list[VerdictCheck] = []
    where: list[tuple[int, int, int]] = []  # (request, passage, sentence)
    for r, (claim, label, passages) in enumerate(requests):
        if label == "nei":
            continue
        for p, passage in enumerate(passages):
            for s, text in enumerate(source(passage)):
                checks.append(VerdictCheck(claim=claim, passages=[passage.model_copy(update={"text": text})]))
                where.append((r, p, s))
    out: list[list[list[int]]] = [[[] for _ in passages] for _, _, passages in requests]
    if not checks:
        return out
    scored: dict[tuple[int, int], list[tuple[float, int]]] = {}
    for (r, p, s), certainty in zip(where, judge(lm, checks)):
        label = requests[r][1]
        if certainty.label == label:
            scored.setdefault((r, p), []).append((certainty.probability(label), s))
    for (r, p), found in scored.items():
        out[r][p] = [s for _, s in sorted(found, key=lambda x: (-x[0], x[1]))[:per_passage]]
    return out


__all__ = ["SentenceSource", "passage_sentences", "rationale_sentences", "split_sentences"]
