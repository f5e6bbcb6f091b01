"""Asking the model for a one-word verdict, closed book or with evidence, and reading its certainty
(:mod:`gatedrag.factcheck.certainty`) from the next-token distribution: one batched forward pass
for any number of claims, nothing generated.

Closed book the question is binary (True / False: PCC's τ); with evidence passages it is three-way,
True / False / Unknown, since passages that do not address the claim leave it unverified (not
enough information).

Example (with any :class:`~gatedrag.lm.base.LanguageModel`)::

    from gatedrag.factcheck.verdict import VerdictCheck, judge
    [c] = judge(lm, [VerdictCheck(claim="Aspirin inhibits platelet aggregation.")])
    c.label, c.tau      # e.g. ('supported', 0.62)
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.factcheck.certainty import Label, VerdictCertainty, verdict_certainty
from gatedrag.lm.base import LanguageModel, next_token_checked
from gatedrag.prompts import numbered_passages
from gatedrag.types import Passage

CLOSED_BOOK_PROMPT = "Is the following claim true or false?\nClaim: {claim}\nAnswer True or False.\nAnswer:"
"""The closed-book verdict prompt (binary)."""
EVIDENCE_PROMPT = (
    "Evidence:\n{evidence}\n\nClaim: {claim}\n"
    "Does the evidence show that the claim is true, show that it is false, or not say? "
    "Answer True, False or Unknown.\nAnswer:"
)
"""The verdict prompt with evidence passages (three-way); ``{evidence}``: the passages, one a line."""
BINARY: tuple[Label, ...] = ("supported", "refuted")
THREE_WAY: tuple[Label, ...] = ("supported", "refuted", "nei")


class VerdictCheck(BaseModel):
    """A claim to judge, with the passages to judge it by (none: closed book)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: str
    passages: list[Passage] = Field(default_factory=list)

    @property
    def labels(self) -> tuple[Label, ...]:
        """The labels the prompt offers."""
        return THREE_WAY if self.passages else BINARY


def verdict_prompt(check: VerdictCheck, *, max_passage_words: int = 200) -> str:
    """The prompt of one check (each passage cut to its first ``max_passage_words`` words).

    >>> print(verdict_prompt(VerdictCheck(claim="Water boils at 90 C.")))
    Is the following claim true or false?
    Claim: Water boils at 90 C.
    Answer True or False.
    Answer:
    """
    if not check.passages:
        return CLOSED_BOOK_PROMPT.format(claim=check.claim.strip())
    lines = numbered_passages(check.passages, max_passage_words)
    return EVIDENCE_PROMPT.format(evidence="\n".join(lines), claim=check.claim.strip())


MAX_BATCH_CHARS = 24_000
"""Prompt characters one forward pass of :func:`judge` takes (about 6,000 tokens, padding included)."""


def judge(
    lm: LanguageModel,
    checks: Sequence[VerdictCheck],
    *,
    max_passage_words: int = 200,
    max_batch_chars: int = MAX_BATCH_CHARS,
) -> list[VerdictCertainty]:
    """The verdict certainty of every check: the prompts in order of length, in batches of at most
    ``max_batch_chars`` (rows times the longest prompt), so that short prompts are not padded to
    the longest of all."""
    prompts = [verdict_prompt(c, max_passage_words=max_passage_words) for c in checks]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    found: dict[int, VerdictCertainty] = {}
    batch: list[int] = []
    for i in [*order, None]:
        if batch and (i is None or (len(batch) + 1) * len(prompts[i]) > max_batch_chars):
            for j, n in zip(batch, next_token_checked(lm, [prompts[j] for j in batch])):
                found[j] = verdict_certainty(n.top, checks[j].labels)
            batch = []
        if i is not None:
            batch.append(i)
    return [found[i] for i in range(len(checks))]


__all__ = [
    "BINARY",
    "CLOSED_BOOK_PROMPT",
    "EVIDENCE_PROMPT",
    "MAX_BATCH_CHARS",
    "THREE_WAY",
    "VerdictCheck",
    "judge",
    "verdict_prompt",
]
