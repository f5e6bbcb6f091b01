"""Reasoning consistency γ (PCC, anchors §6): K rationales written to support a claim and K to
refute it; if the model can argue both sides without contradicting itself the claim is open, if
every supporting rationale contradicts every refuting one the model holds a view.

- ``φ(a, b)``: the probability that rationale ``a`` contradicts rationale ``b`` (0 to 1), judged by the
  model itself (one forward pass a pair: P(Yes) / (P(Yes) + P(No)) to "Do these contradict each other?").
- ``φ̄ = (1/K²) Σ_i Σ_j [φ(r⁺_i, r⁻_j) + φ(r⁻_j, r⁺_i)] / 2``, ``γ = 1 − φ̄`` (unitless, 0 to 1,
  higher = the two sides agree more: PCC's convention, so that γ ≥ β means consistent).
- The most contradictory pair is what a targeted search looks up (:func:`pair_query`).

Example:
    >>> c = consistency_of([[0.9, 0.7], [0.1, 0.3]], [[0.7, 0.5], [0.3, 0.1]])
    >>> round(c.gamma, 3), c.most_contradictory
    (0.55, (0, 0))
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.lm.base import LanguageModel, score_checked
from gatedrag.lm.chat import complete
from gatedrag.lm.sampling import Sampling
from gatedrag.lm.sentences import find_sentence_end
from gatedrag.signals.verify import p_true_of

SUPPORT_PROMPT = "Claim: {claim}\nWrite one sentence of evidence that strongly supports the claim.\nEvidence:"
REFUTE_PROMPT = "Claim: {claim}\nWrite one sentence of evidence that strongly refutes the claim.\nEvidence:"
CONTRADICT_PROMPT = (
    "Statement A: {a}\nStatement B: {b}\nDo statements A and B contradict each other? Answer Yes or No.\nAnswer:"
)
"""The rationale prompts ("strongly support" / "strongly refute", as PCC) and the contradiction judge's."""


class Consistency(BaseModel):
    """γ of one claim, its rationales, and the pair that contradicts most (indices into them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gamma: float = Field(ge=0.0, le=1.0)
    supporting: list[str] = Field(default_factory=list)
    refuting: list[str] = Field(default_factory=list)
    contradiction: list[list[float]] = Field(default_factory=list)
    """``contradiction[i][j]``: φ averaged over both directions for (supporting i, refuting j)."""
    most_contradictory: tuple[int, int] | None = None


def consistency_of(forward: Sequence[Sequence[float]], backward: Sequence[Sequence[float]]) -> Consistency:
    """γ from the contradiction probabilities ``forward[i][j] = φ(r⁺_i, r⁻_j)`` and
    ``backward[i][j] = φ(r⁻_j, r⁺_i)``; with no pair at all, γ = 1 (nothing contradicts)."""
    both = [[(f + b) / 2 for f, b in zip(fr, br)] for fr, br in zip(forward, backward)]
    cells = [(v, (i, j)) for i, row in enumerate(both) for j, v in enumerate(row)]
    if not cells:
        return Consistency(gamma=1.0)
    mean = sum(v for v, _ in cells) / len(cells)
    worst = max(cells, key=lambda c: c[0])[1]
    return Consistency(gamma=min(1.0, max(0.0, 1.0 - mean)), contradiction=both, most_contradictory=worst)


def contradictions(lm: LanguageModel, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """φ(a, b) for every pair, in one batched scoring pass of the model."""
    if not pairs:
        return []
    prompts = [CONTRADICT_PROMPT.format(a=a.strip(), b=b.strip()) for a, b in pairs]
    return [p_true_of(steps[0]).p_true for steps in score_checked(lm, prompts, [" Yes"] * len(prompts))]


def first_sentence(text: str) -> str:
    """A rationale is one sentence: what the model wrote up to its first sentence end.

    >>> first_sentence(" Aspirin blocks COX-1. It also thins blood.")
    'Aspirin blocks COX-1.'
    """
    text = text.strip()
    end = find_sentence_end(text + " ")
    return text[:end].strip() if end is not None else text


def rationales(
    lm: LanguageModel, claims: Sequence[str], k: int, *, sampling: Sampling, max_tokens: int = 48
) -> list[tuple[list[str], list[str]]]:
    """``k`` supporting and ``k`` refuting rationales for every claim, decoded in one sampled round."""
    prompts = [template.format(claim=claim.strip()) for claim in claims for template in (SUPPORT_PROMPT, REFUTE_PROMPT)]
    done = complete(lm, [p for p in prompts for _ in range(k)], max_tokens=max_tokens, stop=["\n"], sampling=sampling)
    texts = [first_sentence(d.text) for d in done]
    out = []
    for n in range(len(claims)):
        base = 2 * k * n
        out.append((texts[base : base + k], texts[base + k : base + 2 * k]))
    return out


def reasoning_consistency(
    lm: LanguageModel, claims: Sequence[str], *, k: int = 3, sampling: Sampling | None = None
) -> list[Consistency]:
    """γ of every claim: its rationales (one sampled round for all) and every cross pair's
    contradiction in both directions (one scoring pass for all)."""
    if not claims:
        return []
    written = rationales(lm, claims, k, sampling=sampling or Sampling(temperature=0.7))
    pairs: list[tuple[str, str]] = []
    for sup, ref in written:
        pairs += [(a, b) for a in sup for b in ref] + [(b, a) for a in sup for b in ref]
    phi = iter(contradictions(lm, pairs))
    out = []
    for sup, ref in written:
        n = len(sup) * len(ref)
        flat = [next(phi) for _ in range(2 * n)]
        forward = [flat[i * len(ref) : (i + 1) * len(ref)] for i in range(len(sup))]
        backward = [flat[n + i * len(ref) : n + (i + 1) * len(ref)] for i in range(len(sup))]
        c = consistency_of(forward, backward)
        out.append(c.model_copy(update={"supporting": sup, "refuting": ref}))
    return out


def pair_query(claim: str, consistency: Consistency, *, max_words: int = 48) -> str:
    """The targeted search's query: the claim, then as much of the most contradictory pair of
    rationales as fits in ``max_words`` (half each; the claim is never cut away).

    >>> c = Consistency(gamma=0.2, supporting=["X causes Y."], refuting=["X does not cause Y at all."],
    ...                 most_contradictory=(0, 0))
    >>> pair_query("X causes Y", c)
    'X causes Y X causes Y. X does not cause Y at all.'
    >>> pair_query("X causes Y", c, max_words=7)
    'X causes Y X causes X does'
    """
    words = claim.split()
    if consistency.most_contradictory is None:
        return " ".join(words)
    i, j = consistency.most_contradictory
    room = max(0, max_words - len(words))
    share = room // 2
    pro = consistency.supporting[i].split()[:share]
    con = consistency.refuting[j].split()[: room - len(pro)]
    return " ".join([*words, *pro, *con])


__all__ = [
    "CONTRADICT_PROMPT",
    "REFUTE_PROMPT",
    "SUPPORT_PROMPT",
    "Consistency",
    "consistency_of",
    "contradictions",
    "first_sentence",
    "pair_query",
    "rationales",
    "reasoning_consistency",
]
