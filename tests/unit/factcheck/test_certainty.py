"""PCC's certainty τ against hand-computed next-token distributions."""

from __future__ import annotations

import math

import pytest

from gatedrag.factcheck.certainty import label_of_word, verdict_certainty
from gatedrag.types import TokenAlternative


def top(*pairs: tuple[str, float]) -> list[TokenAlternative]:
    return [TokenAlternative(token_id=i, text=t, logprob=math.log(p)) for i, (t, p) in enumerate(pairs)]


@pytest.mark.parametrize(
    ("dist", "labels", "want_label", "want_tau", "agree"),
    [
        # binary: |p_T - p_F| when the top two disagree
        (((" True", 0.55), (" False", 0.40), (" The", 0.03)), ("supported", "refuted"), "supported", 0.15, False),
        (((" False", 0.7), (" True", 0.2)), ("supported", "refuted"), "refuted", 0.5, False),
        # the top two tokens mean the same label: tau = 1 whatever the rest
        (((" True", 0.5), (" true", 0.3), (" False", 0.2)), ("supported", "refuted"), "supported", 1.0, True),
        # three-way: tau between the two most likely labels
        (((" Unknown", 0.5), (" True", 0.3), (" False", 0.15)), ("supported", "refuted", "nei"), "nei", 0.2, False),
        # a word of a label the prompt did not offer is ignored
        (((" Unknown", 0.6), (" False", 0.3), (" True", 0.1)), ("supported", "refuted"), "refuted", 0.2, False),
        # order of the alternatives as given does not matter
        (((" False", 0.1), (" True", 0.8)), ("supported", "refuted"), "supported", 0.7, False),
    ],
)
def test_tau_and_label_match_hand_computed_values(dist, labels, want_label, want_tau, agree):
    c = verdict_certainty(top(*dist), labels)
    assert c.label == want_label and c.tau == pytest.approx(want_tau) and c.top_two_agree is agree


def test_masses_sum_the_words_of_each_label_and_probability_renormalises():
    c = verdict_certainty(top((" Yes", 0.4), (" True", 0.2), (" No", 0.25), ("Unknown", 0.05), (" Paris", 0.1)))
    assert c.p_supported == pytest.approx(0.6) and c.p_refuted == pytest.approx(0.25) and c.p_nei == pytest.approx(0.05)
    assert c.probability("supported") == pytest.approx(0.6 / 0.9)
    assert sum(c.probability(label) for label in ("supported", "refuted", "nei")) == pytest.approx(1.0)


def test_no_label_word_in_the_top_k_means_no_label_and_no_certainty():
    c = verdict_certainty(top((" The", 0.5), (" It", 0.3)))
    assert c.label is None and c.tau == 0.0 and c.probability("nei") == pytest.approx(1 / 3)
    assert label_of_word(" correct.") == "supported" and label_of_word("Maybe") is None
