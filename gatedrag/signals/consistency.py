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


def agreement_with(answer: str, others: Sequence[str], *, soft: bool = False) -> float:
    """Mean similarity of ``answer`` to each of ``others`` (normalised exact match, or token F1 with
    ``soft``); 1.0 when there are none (nothing disagrees).

    >>> agreement_with("Tim Burton", ["tim burton", "Spielberg"])
    0.5
    """
    if not others:
        return 1.0
    if soft:
        return sum(token_f1(answer, o) for o in others) / len(others)
    norm = normalize_answer(answer)
    return sum(norm == normalize_answer(o) for o in others) / len(others)


def agreement(answers: Sequence[str], *, soft: bool = False) -> list[float]:
    """Each answer's mean agreement with the other answers (see the module doc)."""
    return [agreement_with(a, [*answers[:i], *answers[i + 1 :]], soft=soft) for i, a in enumerate(answers)]


__all__ = ["agreement", "agreement_with", "normalize_answer", "token_f1"]
