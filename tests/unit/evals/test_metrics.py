"""EM / F1 / accuracy on hand-checked cases, including the alias and yes/no rules."""

import pytest

from gatedrag.evals.metrics import accuracy, contains, exact_match, f1, label_of, normalize, score


def test_normalisation_drops_case_punctuation_and_articles():
    assert normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize("An Apple a day") == "apple day"


def test_exact_match_takes_the_best_alias():
    golds = ["New York", "NYC", "City of New York"]
    assert exact_match("new york.", golds) == 1.0
    assert exact_match("the city of New York", golds) == 1.0
    assert exact_match("New York City", golds) == 0.0


def test_f1_by_hand():
    # prediction tokens: [paris, france]; gold: [paris] -> P = 1/2, R = 1 -> F1 = 2/3
    assert f1("Paris, France", ["Paris"]) == pytest.approx(2 / 3)
    # max over aliases: [john, farrow] vs [john, villiers, farrow]: P = 1, R = 2/3 -> 0.8
    assert f1("John Farrow", ["Maureen", "John Villiers Farrow"]) == pytest.approx(0.8)
    assert f1("", ["x"]) == 0.0


def test_yes_no_rule():
    assert f1("yes", ["no"]) == 0.0
    assert f1("no", ["no"]) == 1.0
    assert f1("yes it is", ["yes"]) == 0.0  # a yes/no gold scores only an exact match (HotpotQA rule)
    assert f1("yes it is", ["it is"]) == pytest.approx(0.8)  # ordinary golds: ordinary token F1
    assert f1("noanswer", ["no answer"]) == 0.0
    assert f1("no", ["no way"]) == 0.0  # a special prediction scores only on an exact match


def test_pubmedqa_accuracy():
    assert label_of("Maybe, the evidence is mixed") == "maybe"
    assert accuracy("Yes.", "yes") == 1.0
    assert accuracy("The answer is no", "yes") == 0.0
    assert accuracy("unclear", "maybe") == 0.0
    assert score("yes", ["yes"], "accuracy") == {"em": 1.0, "f1": 1.0, "acc": 1.0}
    assert score("Paris", ["Paris"]) == {"em": 1.0, "f1": 1.0, "acc": 1.0}


def test_contains_is_whole_word_answer_in_prediction():
    assert contains("He was born in Paris, France.", ["Paris"]) == 1.0
    assert contains("The city of New York", ["NYC", "New York"]) == 1.0  # any alias
    assert contains("Parisian food", ["Paris"]) == 0.0  # whole words only
    assert contains("York", ["New York"]) == 0.0  # the whole gold must appear
    assert contains("anything", ["", "the"]) == 0.0  # a gold that normalises to nothing never matches
    assert score("born in Paris", ["Paris"]) == {"em": 0.0, "f1": 0.5, "acc": 1.0}
