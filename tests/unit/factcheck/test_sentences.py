"""Rationale sentences: only the first passages and each one's closest candidates are judged."""

from __future__ import annotations

from helpers.factlm import FactLM

from gatedrag.factcheck.sentences import candidate_sentences, rationale_sentences
from gatedrag.types import Passage


def test_only_the_first_passages_and_their_closest_sentences_are_judged():
    model = FactLM(closed={"Beta": [(" True", 0.9)]}, by_text={"Beta cells grow.": [(" True", 0.9)]})
    docs = [Passage(id=f"d{i}", title="t", text="Dogs bark. Beta cells grow. Beta cells die.") for i in range(3)]
    [named] = rationale_sentences(
        model, [("Beta cells grow fast.", "supported", docs)], per_passage=3, passages=2, candidates=2
    )
    assert named.judged == 4  # two passages, two candidates each ("Dogs bark." shares no word)
    assert named.sentences == [[1], [1], []]  # "Beta cells die." was judged Unknown; the third passage unread
    [none] = rationale_sentences(model, [("Beta cells grow fast.", "nei", docs)])
    assert none.judged == 0 and none.sentences == [[], [], []]


def test_candidates_share_the_most_content_words_with_the_claim():
    sentences = ["The cat sat.", "Insulin lowers glucose in mice.", "Glucose is a sugar.", "It was so."]
    assert candidate_sentences("Insulin lowers blood glucose.", sentences, 5) == [1, 2]
