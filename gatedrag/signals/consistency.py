"""Agreement between candidate answers: how many of the other candidates say the same thing.

Answers are compared after SQuAD normalisation (lower case, no punctuation, no articles); two
answers agree by exact match of the normalised strings, or, with ``soft``, by their token F1
(unitless, 0 to 1). ``agreement[i]`` is the mean similarity of candidate ``i`` to the others
(0: nobody agrees, 1: all agree; 1.0 for a single candidate by convention: nothing disagrees).

Example:
    >>> from gatedrag.signals.consistency import agreement, normalize_answer
    >>> normalize_answer("The Eiffel Tower!")
    'eiffel tower'
    >>> agreement(["Tim Burton", "tim burton.", "Steven Spielberg"])
    [0.5, 0.5, 0.0]
    >>> [round(a, 2) for a in agreement(["Paris, France", "Paris"], soft=True)]
    [0.67, 0.67]
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD's normalisation)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(a: str, b: str) -> float:
    """Token-overlap F1 of two normalised answers (0 to 1)."""
    ta, tb = normalize_answer(a).split(), normalize_answer(b).split()
    common = sum((Counter(ta) & Counter(tb)).values())
    if not ta or not tb or not common:
        return float(ta == tb)
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


def agreement(answers: Sequence[str], *, soft: bool = False) -> list[float]:
    """Each answer's mean agreement with the other answers (see the module doc)."""
    n = len(answers)
    if n < 2:
        return [1.0] * n
    norm = [normalize_answer(a) for a in answers]

    def same(i: int, j: int) -> float:
        return token_f1(answers[i], answers[j]) if soft else float(norm[i] == norm[j])

    return [sum(same(i, j) for j in range(n) if j != i) / (n - 1) for i in range(n)]


__all__ = ["agreement", "normalize_answer", "token_f1"]
