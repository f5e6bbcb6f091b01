"""How much a difference in exact match between methods on the same questions can be trusted.

* :func:`wilson_interval`: the Wilson score interval of a proportion (EM = right answers / questions);
  unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n right answers.
* :func:`mcnemar_exact`: the exact (binomial) McNemar test for two methods answering the same
  questions: only the discordant questions count (``gained`` = right only with the method,
  ``lost`` = right only with the reference); two-sided p-value of ``min(gained, lost)`` under
  Binomial(gained + lost, 1/2). A p-value, not an effect size: read it beside the counts.
* :func:`paired` counts the discordant questions of two record lists by question id.

Example:
    >>> from gatedrag.evals.significance import mcnemar_exact, wilson_interval
    >>> mcnemar_exact(9, 1)  # 9 questions gained, 1 lost
    0.021484375
    >>> [round(x, 4) for x in wilson_interval(5, 10)]
    [0.2366, 0.7634]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel

from .runner import QuestionRecord


def wilson_interval(right: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval (default 95 %) of ``right / n``; ``(0, 1)`` when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= right <= n:
        raise ValueError(f"right must be within 0..n, got {right} of {n}")
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value for ``gained`` vs ``lost`` discordant questions (1.0 if none)."""
    if gained < 0 or lost < 0:
        raise ValueError("discordant counts must be non-negative")
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


class PairedResult(BaseModel):
    """A method against a reference on the questions both answered (right = EM of 1)."""

    method: str
    reference: str
    questions: int
    gained: int
    """Right with the method, wrong with the reference."""
    lost: int
    """Wrong with the method, right with the reference."""
    p_value: float


def paired(
    records: Sequence[QuestionRecord], reference: Sequence[QuestionRecord], method: str, reference_name: str
) -> PairedResult:
    """Discordant questions of ``records`` against ``reference`` (matched by question id) and their McNemar p."""
    right = {r.id: r.em >= 1.0 for r in reference}
    both = [(r.em >= 1.0, right[r.id]) for r in records if r.id in right]
    gained = sum(1 for mine, ref in both if mine and not ref)
    lost = sum(1 for mine, ref in both if ref and not mine)
    return PairedResult(
        method=method,
        reference=reference_name,
        questions=len(both),
        gained=gained,
        lost=lost,
        p_value=mcnemar_exact(gained, lost),
    )


__all__ = ["PairedResult", "mcnemar_exact", "paired", "wilson_interval"]
