"""Calibration of uncertainty signals and of the confidence shown to users.

Conventions: an *uncertainty* score is higher when the model is less sure (every gatedrag signal
is oriented this way); a *confidence* is a probability-like number in [0, 1], higher = surer.
A question is *wrong* when its exact match is 0.

* :func:`auroc`: probability that a random wrong answer gets a higher uncertainty than a random
  right one (ties count one half); 0.5 = uninformative, 1.0 = perfect. ``None`` if only one class.
* :func:`prr`: prediction-rejection ratio (as lm-polygraph): how much of the gap between random
  and oracle rejection the uncertainty closes when the most uncertain answers are rejected first;
  1.0 = oracle, 0.0 = random, negative = worse than random.
* :func:`ece`: expected calibration error of confidences against correctness, equal-width bins.

Example:
    >>> from gatedrag.evals.calibration import auroc, ece
    >>> auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False])
    1.0
    >>> round(ece([0.9, 0.9, 0.1, 0.1], [True, False, False, False], bins=10), 3)
    0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def auroc(uncertainty: Sequence[float], wrong: Sequence[bool]) -> float | None:
    """AUROC of ``uncertainty`` for detecting ``wrong`` answers (Mann-Whitney U, ties = 1/2)."""
    u = np.asarray(uncertainty, dtype=np.float64)
    y = np.asarray(wrong, dtype=bool)
    if len(u) != len(y):
        raise ValueError(f"{len(u)} scores but {len(y)} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    r = _ranks(u)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _rejection_auc(order: np.ndarray, quality: np.ndarray) -> float:
    """Mean, over kept fractions n/n .. 1/n, of the quality of the kept answers when answers are
    rejected in ``order`` (first = rejected first)."""
    kept = quality[order[::-1]]  # most trusted first
    cum = np.cumsum(kept) / np.arange(1, len(kept) + 1)
    return float(cum.mean())


def prr(uncertainty: Sequence[float], quality: Sequence[float]) -> float | None:
    """Prediction-rejection ratio of ``uncertainty`` against per-answer ``quality`` (EM or F1)."""
    u = np.asarray(uncertainty, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if len(u) != len(q):
        raise ValueError(f"{len(u)} scores but {len(q)} qualities")
    if len(u) < 2:
        return None
    random = float(q.mean())
    oracle = _rejection_auc(np.argsort(q, kind="mergesort"), q)  # worst answers rejected first
    if math.isclose(oracle, random):
        return None
    # ties in the uncertainty are broken in the random direction by averaging both tie orders
    by_u = 0.5 * (
        _rejection_auc(np.lexsort((q, -u)), q)  # within ties, the worse answers are rejected first
        + _rejection_auc(np.lexsort((-q, -u)), q)  # within ties, the better answers are rejected first
    )
    return float((by_u - random) / (oracle - random))


class ReliabilityBin(BaseModel):
    lo: float
    hi: float
    count: int
    confidence: float
    accuracy: float


def reliability(confidence: Sequence[float], correct: Sequence[bool], *, bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width confidence bins with their mean confidence and accuracy (empty bins left out)."""
    c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(correct, dtype=np.float64)
    if len(c) != len(y):
        raise ValueError(f"{len(c)} confidences but {len(y)} labels")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.minimum(np.searchsorted(edges, c, side="right") - 1, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(
                ReliabilityBin(
                    lo=float(edges[b]),
                    hi=float(edges[b + 1]),
                    count=int(m.sum()),
                    confidence=float(c[m].mean()),
                    accuracy=float(y[m].mean()),
                )
            )
    return out


def ece(confidence: Sequence[float], correct: Sequence[bool], *, bins: int = 10) -> float | None:
    """Expected calibration error: sum over bins of (share of answers) x |accuracy - confidence|."""
    if len(confidence) == 0:
        return None
    table = reliability(confidence, correct, bins=bins)
    n = sum(b.count for b in table)
    return float(sum(b.count / n * abs(b.accuracy - b.confidence) for b in table))


__all__ = ["ReliabilityBin", "auroc", "ece", "prr", "reliability"]
