"""The model's certainty about a verdict, read from one next-token distribution (PCC's τ,
anchors §6): the model is asked for a one-word verdict and the probability mass of the words that
mean each label is summed over the top alternatives of the first answer token.

- ``p_supported`` / ``p_refuted`` / ``p_nei``: mass (probability, 0 to 1) of the words meaning
  "true", "false" and "not enough information" among the top-k next tokens (case and leading
  space ignored); mass outside the top-k is unknown, so the three need not sum to 1.
- ``tau`` (unitless, 0 to 1, higher = surer): 1 if the two most likely tokens mean the same label,
  else ``|p_a - p_b|`` for the two most likely labels (PCC: ``|p_T - p_F|`` when binary).
- ``label``: the label with the most mass (``None`` if no top token means any label).

Example:
    >>> import math
    >>> from gatedrag.types import TokenAlternative
    >>> top = [TokenAlternative(token_id=1, text=" True", logprob=math.log(0.6)),
    ...        TokenAlternative(token_id=2, text=" False", logprob=math.log(0.3)),
    ...        TokenAlternative(token_id=3, text=" true", logprob=math.log(0.05))]
    >>> c = verdict_certainty(top)
    >>> c.label, round(c.p_supported, 2), round(c.tau, 2)
    ('supported', 0.65, 0.35)
    >>> verdict_certainty(top[::2]).tau   # the top two both mean "true"
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.types import TokenAlternative

Label = Literal["supported", "refuted", "nei"]
"""A verdict: the evidence supports the claim, refutes it, or there is not enough information."""
LABELS: tuple[Label, ...] = ("supported", "refuted", "nei")

LABEL_WORDS: dict[Label, frozenset[str]] = {
    "supported": frozenset({"true", "yes", "supported", "support", "supports", "correct"}),
    "refuted": frozenset({"false", "no", "refuted", "refute", "refutes", "contradict", "incorrect"}),
    "nei": frozenset({"unknown", "unclear", "nei", "insufficient", "undetermined"}),
}
"""First answer words that mean each label (lower-cased, stripped)."""


def label_of_word(text: str) -> Label | None:
    """The label a first answer token means, if any.

    >>> label_of_word(" False"), label_of_word("Unknown"), label_of_word(" Paris")
    ('refuted', 'nei', None)
    """
    word = text.strip().lower().strip(".,:;!\"'")
    return next((label for label, words in LABEL_WORDS.items() if word in words), None)


class VerdictCertainty(BaseModel):
    """What one next-token distribution says about a verdict (see the module doc for units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p_supported: float = Field(ge=0.0, le=1.0)
    p_refuted: float = Field(ge=0.0, le=1.0)
    p_nei: float = Field(ge=0.0, le=1.0)
    tau: float = Field(ge=0.0, le=1.0)
    label: Label | None
    top_two_agree: bool
    """The two most likely tokens mean the same label (then ``tau`` is 1)."""

    def mass(self, label: Label) -> float:
        return {"supported": self.p_supported, "refuted": self.p_refuted, "nei": self.p_nei}[label]

    def biased(self, bias: Mapping[Label, float], labels: Sequence[Label]) -> tuple[Label | None, float]:
        """The label chosen among ``labels`` with log-offsets ``bias`` added to their masses, and its
        share of the offset masses (``(None, 1/len(labels))`` when no token meant any of them).

        >>> c = VerdictCertainty(p_supported=0.6, p_refuted=0.3, p_nei=0.0, tau=0.3, label="supported",
        ...                      top_two_agree=False)
        >>> c.biased({}, ("supported", "refuted"))[0], c.biased({"refuted": 1.0}, ("supported", "refuted"))[0]
        ('supported', 'refuted')
        """
        return biased_label({label: self.mass(label) for label in labels}, bias)

    def probability(self, label: Label) -> float:
        """``label``'s share of the mass on labels (0 to 1; 1/3 each when no token means a label)."""
        total = self.p_supported + self.p_refuted + self.p_nei
        return self.mass(label) / total if total > 0 else 1.0 / len(LABELS)


def biased_label(masses: Mapping[Label, float], bias: Mapping[Label, float]) -> tuple[Label | None, float]:
    """The label with the most mass once each is multiplied by ``exp(bias[label])`` (a log-offset:
    a contextual calibration of a model that favours one answer word; ties: the first given), and
    its share of the offset masses."""
    scored = {label: m * math.exp(bias.get(label, 0.0)) for label, m in masses.items()}
    total = sum(scored.values())
    if total <= 0:
        return None, 1.0 / max(1, len(scored))
    best = max(scored, key=lambda k: scored[k])
    return best, scored[best] / total


def verdict_certainty(top: Sequence[TokenAlternative], labels: Sequence[Label] = LABELS) -> VerdictCertainty:
    """τ and the label masses from the top alternatives of the first answer token (most likely
    first or not: they are sorted here). ``labels``: the labels the prompt offered (``("supported",
    "refuted")`` for a binary True/False question: words of other labels are then ignored)."""
    ranked = sorted(top, key=lambda a: a.logprob, reverse=True)
    mass: dict[Label, float] = dict.fromkeys(LABELS, 0.0)
    meant: list[Label | None] = []
    for alt in ranked:
        label = label_of_word(alt.text)
        label = label if label in labels else None
        meant.append(label)
        if label is not None:
            mass[label] += math.exp(alt.logprob)
    mass = {k: min(1.0, v) for k, v in mass.items()}
    offered = sorted(labels, key=lambda k: mass[k], reverse=True)
    best = offered[0] if mass[offered[0]] > 0 else None
    agree = len(meant) >= 2 and meant[0] is not None and meant[0] == meant[1]
    tau = 1.0 if agree else abs(mass[offered[0]] - mass[offered[1]]) if len(offered) > 1 else mass[offered[0]]
    return VerdictCertainty(
        p_supported=mass["supported"],
        p_refuted=mass["refuted"],
        p_nei=mass["nei"],
        tau=min(1.0, tau),
        label=best,
        top_two_agree=agree,
    )


__all__ = [
    "LABELS",
    "LABEL_WORDS",
    "Label",
    "VerdictCertainty",
    "biased_label",
    "label_of_word",
    "verdict_certainty",
]
