"""SQuAD-normalised exact match and token F1, max over gold aliases (anchors §1.1).

A prediction of "yes", "no" or "noanswer" gets F1 = 0 unless it matches the gold exactly.
:func:`contains` is the lenient answer-in-prediction accuracy that PopQA-style papers report.
PubMedQA is scored by accuracy on its label (yes / no / maybe): the first label word of the
normalised prediction.

Example:
    >>> from gatedrag.evals.metrics import exact_match, f1
    >>> exact_match("The Eiffel Tower", ["eiffel tower"]), round(f1("Paris, France", ["Paris"]), 2)
    (1.0, 0.67)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gatedrag.signals.consistency import normalize_answer

normalize = normalize_answer
"""Lower-case, drop punctuation and articles, collapse whitespace (SQuAD)."""


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction), normalize(gold)
    special = {"yes", "no", "noanswer"}
    if (p in special or g in special) and p != g:
        return 0.0
    pt, gt = p.split(), g.split()
    common = sum((Counter(pt) & Counter(gt)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pt), common / len(gt)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, golds: Sequence[str]) -> float:
    return max((_f1(prediction, g) for g in golds), default=0.0)


def contains(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when some normalised gold alias occurs as a whole-word span of the normalised prediction:
    the "accuracy" of PopQA, Self-RAG and CRAG, lenient to an answer written as a phrase
    ("He was born in Paris" for "Paris"). An empty gold never matches.

    >>> contains("He was born in Paris.", ["Paris"]), contains("Parisian", ["Paris"])
    (1.0, 0.0)
    """
    p = f" {normalize(prediction)} "
    return float(any(g and f" {g} " in p for g in map(normalize, golds)))


LABELS = ("yes", "no", "maybe")


def label_of(prediction: str, labels: Sequence[str] = LABELS) -> str | None:
    """The first of ``labels`` appearing as a word of the normalised prediction."""
    for word in normalize(prediction).split():
        if word in labels:
            return word
    return None


def accuracy(prediction: str, gold: str, labels: Sequence[str] = LABELS) -> float:
    """1.0 when the prediction's label (see :func:`label_of`) equals the gold label."""
    return float(label_of(prediction, labels) == normalize(gold))


def score(prediction: str, golds: Sequence[str], metric: str = "qa") -> dict[str, float]:
    """``{"em", "f1", "acc"}``: for short-answer QA, ``acc`` is :func:`contains`; for
    ``metric="accuracy"`` all three equal the label accuracy."""
    if metric == "accuracy":
        acc = accuracy(prediction, golds[0])
        return {"em": acc, "f1": acc, "acc": acc}
    return {"em": exact_match(prediction, golds), "f1": f1(prediction, golds), "acc": contains(prediction, golds)}


__all__ = ["LABELS", "accuracy", "contains", "exact_match", "f1", "label_of", "normalize", "score"]
