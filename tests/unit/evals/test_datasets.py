"""Each loader on the first records of the real files, and clear errors for the wrong format."""

import json

import pytest

from gatedrag.errors import DatasetError
from gatedrag.evals.datasets import DATASETS, corpus_path, load_dataset
from gatedrag.prompts import PromptTemplate


def test_hotpotqa(data_dir):
    ex = load_dataset("hotpotqa", data_dir, limit=3)
    raw = json.loads((data_dir / "hotpotqa/dev.json").read_text())[:3]
    assert [e.id for e in ex] == [r["_id"] for r in raw]
    assert [e.answers for e in ex] == [[r["answer"]] for r in raw]
    assert ex[0].fields["type"] == raw[0]["type"] and ex[0].metric == "qa"


def test_2wiki_answers_include_aliases(data_dir):
    ex = load_dataset("2wiki", data_dir)
    with_alias = next(e for e in ex if len(e.answers) > 1)
    raw = next(r for r in json.loads((data_dir / "2wikimultihopqa/dev.json").read_text()) if r["_id"] == with_alias.id)
    assert with_alias.answers[0] == raw["answer"] and set(raw["answer_aliases"]) <= set(with_alias.answers)
    assert ex[0].fields["type"] in {"comparison", "compositional", "inference", "bridge_comparison"}


def test_musique_popqa_pubmedqa(data_dir):
    m = load_dataset("musique", data_dir, limit=1)[0]
    assert m.id.startswith(("2hop", "3hop", "4hop")) and "Stanley Hall" in m.answers and m.fields["hops"] >= 2
    p = load_dataset("popqa", data_dir, limit=1)[0]
    assert p.answers[0] == "politician" and len(p.answers) > 1 and p.fields["s_pop"] == 142
    q = load_dataset("pubmedqa", data_dir)
    assert len(q) == 1000 and q[0].metric == "accuracy" and q[0].answers[0] in {"yes", "no", "maybe"}
    assert sum(e.fields["split"] == "test" for e in q) == 500


def test_every_dataset_has_a_corpus(data_dir, tmp_path):
    for name in DATASETS:
        path = corpus_path(name, data_dir, cache_dir=tmp_path)
        first = json.loads(path.open().readline())
        assert {"id", "title", "text"} <= set(first)


def test_wrong_format_names_the_expected_fields(data_dir, tmp_path):
    with pytest.raises(DatasetError, match="context"):
        DATASETS["hotpotqa"].loader(data_dir / "popqa/popqa_1000.json")
    with pytest.raises(DatasetError, match="answer_aliases"):
        DATASETS["2wikimultihopqa"].loader(data_dir / "hotpotqa/dev.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        DATASETS["popqa"].loader(bad)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset("hotpotqa", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("squad", data_dir)


def test_demo_questions_are_skipped_and_never_in_the_first_100(data_dir):
    for name in ("hotpotqa", "2wikimultihopqa"):
        demos = PromptTemplate.load(name).source_ids
        all_ids = [e.id for e in load_dataset(name, data_dir)]
        assert demos <= set(all_ids) and not demos & set(all_ids[:200])
        kept = load_dataset(name, data_dir, skip=demos)
        assert len(kept) == len(all_ids) - len(demos)
    assert len(PromptTemplate.load("hotpotqa").demos) == 8 and len(PromptTemplate.load("2wikimultihopqa").demos) == 6
