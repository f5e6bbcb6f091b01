"""Gold supporting passages are found in each dataset's corpus; the gold method is given them."""

from __future__ import annotations

import pytest

from gatedrag.evals.baselines import METHODS, method_config
from gatedrag.evals.datasets import corpus_path, load_dataset
from gatedrag.evals.gold import GoldPassages
from gatedrag.retrieval.corpus import load_corpus


@pytest.mark.parametrize("dataset", ["hotpotqa", "2wikimultihopqa", "musique"])
def test_every_question_has_its_supporting_passages_in_the_corpus(data_dir, dataset):
    gold = GoldPassages(load_corpus(corpus_path(dataset, data_dir)))
    examples = load_dataset(dataset, data_dir, limit=100)
    found = [gold.ids(e) for e in examples]
    assert all(len(ids) >= 2 for ids in found), [e.id for e, ids in zip(examples, found) if len(ids) < 2]
    assert all(len(ids) == len(set(ids)) for ids in found)
    if dataset == "musique":  # 2-4 hops, one supporting paragraph each
        assert [len(ids) for ids in found] == [e.fields["hops"] for e in examples]
    first = gold.passages_of(examples[0])
    assert all(p.id in gold.passages for p in first)


def test_gold_method_is_closed_book_settings_with_given_context():
    gold, no_rag = method_config("gold", "hotpotqa"), method_config("no-rag", "hotpotqa")
    assert METHODS["gold"].context == "gold" and METHODS["no-rag"].context == "retrieved"
    assert gold == no_rag  # the same pipeline; only the given passages differ
