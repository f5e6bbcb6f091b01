"""P(True): the model's own probability that a candidate answer is right, given the passages it
was written with (Kadavath et al. 2022's self-evaluation, one forward pass, nothing generated).

The model reads the passages, the question and the proposed answer, then the question "Is the
proposed answer correct?"; ``p_true = p(Yes) / (p(Yes) + p(No))`` over the first answer token
(unitless, 0 to 1, higher = more likely right). When " No" is not among the step's top
alternatives, ``p(Yes)`` alone is returned, a lower bound (``VerifiedAnswer.exact`` is False).

Example (with any :class:`~gatedrag.lm.base.LanguageModel`)::

    from gatedrag.signals.verify import AnswerCheck, verify_answers
    [v] = verify_answers(lm, [AnswerCheck(question="Who wrote Hamlet?", answer="Shakespeare")])
    v.p_true   # e.g. 0.93
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.lm.base import LanguageModel, score_checked
from gatedrag.prompts import numbered_passages
from gatedrag.types import Passage, TokenStep

VERIFY_PROMPT = (
    "{context}Question: {question}\nProposed answer: {answer}\n"
    "Is the proposed answer correct? Answer Yes or No.\nAnswer:"
)
"""The self-evaluation prompt; ``{context}`` is the passages, one a line, then a blank line (or empty)."""


class AnswerCheck(BaseModel):
    """A candidate answer to check, with the passages it was written with (none: closed book)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    question: str
    answer: str
    passages: list[Passage] = Field(default_factory=list)


class VerifiedAnswer(BaseModel):
    """P(True) of a candidate (unitless, 0 to 1, higher = more likely right)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p_true: float = Field(ge=0.0, le=1.0)
    p_yes: float = Field(ge=0.0, le=1.0)
    p_no: float | None = Field(default=None, ge=0.0, le=1.0)
    exact: bool = True
    """``False``: " No" was not among the top alternatives, ``p_true`` is ``p(Yes)`` (a lower bound)."""


def verify_prompt(check: AnswerCheck, *, max_passage_words: int = 120) -> str:
    """The prompt of one check (each passage cut to its first ``max_passage_words`` words)."""
    lines = numbered_passages(check.passages, max_passage_words)
    context = "Context:\n" + "\n".join(lines) + "\n\n" if lines else ""
    return VERIFY_PROMPT.format(context=context, question=check.question.strip(), answer=check.answer.strip())


def p_true_of(step: TokenStep) -> VerifiedAnswer:
    """P(True) from the distribution of the first answer token, scored as " Yes".

    >>> from gatedrag.types import TokenAlternative
    >>> s = TokenStep(token_id=1, text=" Yes", logprob=math.log(0.6), entropy=1.0,
    ...               top=[TokenAlternative(token_id=2, text=" No", logprob=math.log(0.2))])
    >>> round(p_true_of(s).p_true, 2)
    0.75
    """
    p_yes = math.exp(step.logprob)
    p_no = next((math.exp(a.logprob) for a in step.top if a.text.strip().lower() == "no"), None)
    if p_no is None:
        return VerifiedAnswer(p_true=p_yes, p_yes=p_yes, exact=False)
    return VerifiedAnswer(p_true=p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5, p_yes=p_yes, p_no=p_no)


def verify_answers(
    lm: LanguageModel, checks: Sequence[AnswerCheck], *, max_passage_words: int = 120
) -> list[VerifiedAnswer]:
    """P(True) of every check, in one batched scoring pass of the model."""
    if not checks:
        return []
    prompts = [verify_prompt(c, max_passage_words=max_passage_words) for c in checks]
    scored = score_checked(lm, prompts, [" Yes"] * len(checks))
    return [p_true_of(steps[0]) for steps in scored]


__all__ = ["VERIFY_PROMPT", "AnswerCheck", "VerifiedAnswer", "p_true_of", "verify_answers", "verify_prompt"]
