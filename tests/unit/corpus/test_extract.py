"""Extraction: the tolerant list parser, the reasoning rule, the LLM extractor's parsing on canned
completions, spaCy on real sentences, and the P/R scorer on a hand-computed case."""

from __future__ import annotations

import pytest

from gatedrag.corpus.extract import LLMExtractor, is_reasoning, parse_list
from gatedrag.evals.extraction import GoldItem, load_gold, score_extractor
from gatedrag.types import Triple


def test_parse_list_is_tolerant():
    assert parse_list(' [["Ed Wood", "directed by", "Tim Burton"]] trailing') == [
        ["Ed Wood", "directed by", "Tim Burton"]
    ]
    assert parse_list("[['a', 'b', 'c']]") == [["a", "b", "c"]]  # Python literal
    assert parse_list("[]") == [] and parse_list("no list here") == [] and parse_list("[[broken") == []


def test_reasoning_sentences():
    assert is_reasoning("So the answer is Chief of Protocol.")
    assert is_reasoning("Thus, Ed Wood came out first.")
    assert is_reasoning("Therefore, both are American.")
    assert not is_reasoning("Ed Wood was directed by Tim Burton.")
    assert not is_reasoning("Sofia is the capital of Bulgaria.")  # "So" only as a whole word


def test_llm_extractor_parses_completions_and_skips_reasoning():
    seen: list[list[str]] = []

    def generate(prompts: list[str], budget: int) -> list[str]:
        seen.append(prompts)
        if prompts[0].rstrip().endswith("Entities:"):
            return [' ["Ed Wood", "Ed Wood", "1994"]']
        return [' [["Ed Wood", "directed by", "Tim Burton"], ["bad"], ["Ed Wood", "", "1994"]] and more']

    ex = LLMExtractor(generate)
    out = ex.triples(["Ed Wood was directed by Tim Burton.", "So the answer is Tim Burton."])
    assert out == [[Triple(head="Ed Wood", relation="directed by", tail="Tim Burton")], []]
    assert len(seen[-1]) == 1  # the reasoning sentence never reached the model
    assert ex.entities(["Who directed the 1994 film Ed Wood?"]) == [["Ed Wood", "1994"]]


def test_spacy_extractor_on_real_sentences():
    pytest.importorskip("spacy")
    from gatedrag.corpus.extract import SpacyExtractor

    ex = SpacyExtractor()
    try:
        ex.nlp  # noqa: B018
    except Exception as err:  # the English pipeline is an optional extra
        pytest.skip(str(err))
    (triples, none) = ex.triples(
        ["Scott Derrickson was born on July 16, 1966 in Denver, Colorado.", "So the answer is Denver."]
    )
    assert none == []
    assert {t.head for t in triples} == {"Scott Derrickson"}
    assert {"July 16, 1966", "Denver, Colorado"} <= {t.tail for t in triples}
    (entities,) = ex.entities(["Were Scott Derrickson and Ed Wood of the same American nationality?"])
    assert entities == ["Scott Derrickson", "Ed Wood"]


class _Fixed:
    name = "fixed"

    def triples(self, sentences):
        return [[Triple(head="A B", relation="r", tail="C")], [Triple(head="x", relation="r", tail="y")]][
            : len(sentences)
        ]

    def entities(self, questions):
        return [["Ed Wood", "Denver"]]


def test_scorer_by_hand():
    gold = [
        GoldItem(kind="sentence", text="A B met C and D.", triples=[("A B", "met", "C"), ("A B", "met", "D")]),
        GoldItem(kind="reasoning", text="So the answer is C."),
        GoldItem(kind="question", text="q", entities=["Ed Wood"]),
    ]
    s = score_extractor(_Fixed(), gold)
    # entities: predicted {A B, C}, gold {A B, C, D}: P = 2/2, R = 2/3
    assert (s.entities.precision, s.entities.recall) == (1.0, 0.6667)
    assert (s.pairs.precision, s.pairs.recall) == (1.0, 0.5)
    assert s.empty_on_reasoning == 0.0  # the fixed extractor returned a triple for it
    assert (s.question_entities.precision, s.question_entities.recall) == (0.5, 1.0)


def test_gold_set_resolves_against_the_real_data(data_dir):
    gold = load_gold(data_dir)
    kinds = [g.kind for g in gold]
    assert (kinds.count("sentence"), kinds.count("reasoning"), kinds.count("question")) == (40, 10, 20)
    for g in gold:
        for h, _, t in g.triples:
            assert (h in g.text and t in g.text.replace("&amp;", "&")) or h in g.text.replace("&amp;", "&")


def test_spacy_coordinated_subjects_are_heads_not_a_claim():
    pytest.importorskip("spacy")
    from gatedrag.corpus.extract import SpacyExtractor

    ex = SpacyExtractor()
    try:
        ex.nlp  # noqa: B018
    except Exception as err:
        pytest.skip(str(err))
    (triples,) = ex.triples(["Scott Derrickson and Ed Wood were both American citizens."])
    assert {(t.head, t.tail) for t in triples} == {("Scott Derrickson", "American"), ("Ed Wood", "American")}


def test_llm_extractor_runs_on_a_real_decode_session(tiny_lm):
    ex = LLMExtractor.from_model(tiny_lm, max_new_tokens=8)
    out = ex.triples(["Ed Wood was directed by Tim Burton.", "Thus, yes.", "Paris is in France."])
    assert len(out) == 3 and out[1] == [] and all(isinstance(t, Triple) for ts in out for t in ts)
    assert len(ex.entities(["Who directed Ed Wood?"])) == 1
