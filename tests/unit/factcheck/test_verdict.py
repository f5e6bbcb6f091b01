"""Verdict prompts and the batched certainty read from the model's next-token distributions."""

from __future__ import annotations

import math

from gatedrag.factcheck.verdict import VerdictCheck, judge, verdict_prompt
from gatedrag.lm.base import NextToken
from gatedrag.types import Passage, TokenAlternative


class Distributions:
    """A model whose next-token distribution after a prompt is chosen by what the prompt holds."""

    name = "distributions"

    def __init__(self, by_word: dict[str, list[tuple[str, float]]]):
        self.by_word = by_word
        self.prompts: list[list[str]] = []

    def next_token(self, prompts):
        self.prompts.append(list(prompts))
        out = []
        for p in prompts:
            pairs = next(v for k, v in self.by_word.items() if k in p)
            top = [TokenAlternative(token_id=i, text=t, logprob=math.log(q)) for i, (t, q) in enumerate(pairs)]
            out.append(NextToken(entropy=1.0, top=top))
        return out


def test_closed_book_is_binary_and_evidence_three_way_in_one_batched_pass():
    lm = Distributions(
        {
            "Evidence:": [(" Unknown", 0.5), (" True", 0.3), (" False", 0.1)],
            "Claim: Aspirin": [(" Unknown", 0.6), (" True", 0.3), (" False", 0.1)],
            "Claim: Water": [(" False", 0.8), (" True", 0.15)],
        }
    )
    evidence = [Passage(id="1", title="Boiling", text="Water boils at 100 C at sea level. " * 100)]
    checks = [
        VerdictCheck(claim="Aspirin thins blood."),
        VerdictCheck(claim="Water boils at 90 C."),
        VerdictCheck(claim="Water boils at 90 C.", passages=evidence),
    ]
    closed_a, closed_w, with_evidence = judge(lm, checks, max_passage_words=20)
    assert len(lm.prompts) == 1 and len(lm.prompts[0]) == 3  # one batched pass
    assert closed_a.label == "supported" and closed_a.p_nei == 0.0  # "Unknown" is not offered closed book
    assert closed_w.label == "refuted" and round(closed_w.tau, 2) == 0.65
    assert with_evidence.label == "nei" and round(with_evidence.tau, 2) == 0.2
    prompt = lm.prompts[0][2]
    assert "[1] Boiling: Water boils" in prompt and "True, False or Unknown" in prompt
    assert len(prompt.split("[1] Boiling: ")[1].split("\n")[0].split()) == 20  # passage cut to 20 words
    assert judge(lm, []) == []


def test_the_closed_book_prompt_offers_two_labels():
    check = VerdictCheck(claim=" A claim. ")
    assert check.labels == ("supported", "refuted") and "Claim: A claim.\n" in verdict_prompt(check)


def test_prompts_are_batched_by_length_within_the_budget_and_answered_in_order():
    lm = Distributions({"short": [(" True", 0.9)], "long": [(" False", 0.9)]})
    checks = [VerdictCheck(claim=("long " * 40).strip()), *[VerdictCheck(claim=f"short {i}") for i in range(4)]]
    out = judge(lm, checks, max_batch_chars=400)
    assert [c.label for c in out] == ["refuted", *["supported"] * 4]  # in the order given
    assert [len(b) for b in lm.prompts] == [4, 1]  # the short ones together, the long one alone
    assert all(len(b) * max(map(len, b)) <= 400 or len(b) == 1 for b in lm.prompts)
