"""The counterfactual (knowledge-conflict) set built from PopQA, and its recall measures."""

import re

import pytest

from gatedrag.evals.conflict import ConflictExample, build_conflict_set, conflict_recall


def test_counterfactual_passages_state_the_substitute_and_not_the_truth(data_dir):
    examples = build_conflict_set(data_dir, limit=120)
    assert len(examples) == 120 and {e.relation for e in examples} == {"occupation", "place of birth"}
    for e in examples:
        assert re.search(rf"(?<!\w){re.escape(e.context_answer)}(?!\w)", e.passage)
        for a in e.memory_answers:
            assert not re.search(rf"(?<!\w){re.escape(a)}(?!\w)", e.passage, re.IGNORECASE), (a, e.passage)
        assert e.passage != e.original_passage
    assert build_conflict_set(data_dir, limit=120) == examples  # deterministic


def test_popularity_order_puts_popular_subjects_first(data_dir):
    import json

    pop = {str(r["id"]): r["s_pop"] for r in json.loads((data_dir / "popqa" / "popqa_1000.json").read_text())}
    popular = build_conflict_set(data_dir, limit=40, order="popularity")
    by_file = build_conflict_set(data_dir, limit=40)
    for relation in ("occupation", "place of birth"):
        ranks = [pop[e.id] for e in popular if e.relation == relation]
        assert ranks == sorted(ranks, reverse=True)
    assert sum(pop[e.id] for e in popular) > 5 * sum(pop[e.id] for e in by_file)
    assert {e.relation for e in popular[:2]} == {"occupation", "place of birth"}  # relations still alternate
    with pytest.raises(ValueError, match="order"):
        build_conflict_set(data_dir, order="random")


def test_recall_by_hand():
    e = ConflictExample(
        id="1",
        question="What is X's occupation?",
        relation="occupation",
        subject="X",
        memory_answers=["politician", "political leader"],
        context_answer="journalist",
        passage="X was a journalist.",
        original_passage="X was a politician.",
    )
    scores = conflict_recall(["He was a Political leader.", "a journalist", "a politicians' aide"], [e, e, e])
    assert scores["memory_recall"] == pytest.approx(1 / 3) and scores["context_recall"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        conflict_recall([], [])


def test_evaluate_control_runs_every_setting_on_the_same_examples(tiny_lm):
    from gatedrag.config import KnowledgeControlConfig
    from gatedrag.evals.conflict import evaluate_control

    e = ConflictExample(
        id="1",
        question="What is X's occupation?",
        relation="occupation",
        subject="X",
        memory_answers=["politician"],
        context_answer="journalist",
        passage="X was a journalist.",
        original_passage="X was a politician.",
    )
    out = evaluate_control(
        tiny_lm,
        [e, e, e],
        {"plain": None, "memory": KnowledgeControlConfig(alpha=1.0, epsilon=1.0)},
        batch_size=2,
        max_new_tokens=3,
    )
    assert set(out) == {"plain", "memory"}
    assert out["plain"]["adjusted_token_fraction"] == 0.0 and out["plain"]["n"] == 3
    assert all(0.0 <= v["memory_recall"] <= 1.0 and 0.0 <= v["context_recall"] <= 1.0 for v in out.values())


def test_evaluate_control_resumes_from_its_record_file(tiny_lm, tmp_path):
    import json

    from gatedrag.config import KnowledgeControlConfig
    from gatedrag.evals.conflict import evaluate_control

    examples = [
        ConflictExample(
            id=str(i),
            question=f"What is X{i}'s occupation?",
            relation="occupation",
            subject=f"X{i}",
            memory_answers=["politician"],
            context_answer="journalist",
            passage=f"X{i} was a journalist.",
            original_passage=f"X{i} was a politician.",
        )
        for i in range(5)
    ]
    settings = {"plain": None, "memory": KnowledgeControlConfig(alpha=1.0, epsilon=1.0)}
    path = tmp_path / "conflict.jsonl"
    full = evaluate_control(tiny_lm, examples, settings, batch_size=2, max_new_tokens=3, out=path)
    lines = path.read_text().splitlines()
    assert len(lines) == 10 and {(json.loads(x)["setting"], json.loads(x)["id"]) for x in lines} == {
        (s, str(i)) for s in settings for i in range(5)
    }
    # a run killed mid-line: keep 6 whole records and half of the seventh
    path.write_text("\n".join(lines[:6]) + "\n" + lines[6][: len(lines[6]) // 2])
    calls = []
    again = evaluate_control(
        tiny_lm, examples, settings, batch_size=2, max_new_tokens=3, out=path, progress=lambda *a: calls.append(a)
    )
    assert again == full  # greedy decoding: the resumed records equal the uninterrupted ones
    assert len(path.read_text().splitlines()) == 10
    assert all(name == "memory" for name, *_ in calls)  # only the missing setting was decoded
    with pytest.raises(ValueError, match="another output file"):
        evaluate_control(tiny_lm, examples, {"memory": KnowledgeControlConfig(alpha=0.0)}, max_new_tokens=3, out=path)
    other = tmp_path / "other.jsonl"  # the same records from another model
    other.write_text("".join(json.dumps(json.loads(x) | {"model": "another-model"}) + "\n" for x in lines))
    with pytest.raises(ValueError, match="another-model"):
        evaluate_control(tiny_lm, examples, settings, max_new_tokens=3, out=other)


def test_closed_book_setting_ignores_the_passage(tiny_lm, tmp_path):
    import json

    from gatedrag.evals.conflict import CLOSED_BOOK, evaluate_control

    base = {
        "question": "What is X's occupation?",
        "relation": "occupation",
        "subject": "X",
        "memory_answers": ["politician"],
        "context_answer": "journalist",
        "original_passage": "X was a politician.",
    }
    examples = [
        ConflictExample(id="a", passage="X was a journalist and editor of a weekly paper.", **base),
        ConflictExample(id="b", passage="Born in 1901, X worked as a journalist.", **base),
    ]
    path = tmp_path / "cb.jsonl"
    evaluate_control(tiny_lm, examples, {"cb": CLOSED_BOOK, "plain": None}, max_new_tokens=4, out=path)
    recs = {(r["setting"], r["id"]): r for r in map(json.loads, path.read_text().splitlines())}
    assert recs[("cb", "a")]["prediction"] == recs[("cb", "b")]["prediction"]
    assert recs[("cb", "a")]["adjusted"] == 0.0 and recs[("cb", "a")]["config"] == CLOSED_BOOK


def test_summarize_conflict_scores_the_known_facts_apart(tmp_path):
    import json

    from gatedrag.evals.conflict import CLOSED_BOOK, summarize_conflict

    def ex(i, mem, ctx):
        return ConflictExample(
            id=str(i),
            question="?",
            relation="occupation",
            subject="X",
            memory_answers=[mem],
            context_answer=ctx,
            passage=f"X was a {ctx}.",
            original_passage=f"X was a {mem}.",
        )

    examples = [ex(0, "politician", "journalist"), ex(1, "poet", "painter"), ex(2, "actor", "singer")]
    preds = {
        CLOSED_BOOK: ["a politician", "a poet", "a lawyer"],  # knows facts 0 and 1
        "plain": ["a journalist", "a painter", "a singer"],
        "memory": ["a politician", "a painter", "an actor"],
        "partial": ["a politician"],  # misses examples: not scored
    }
    lines = [
        json.dumps({"setting": s, "id": str(i), "prediction": p, "adjusted": 0.5 * (s == "memory"), "config": None})
        for s, ps in preds.items()
        for i, p in enumerate(ps)
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = summarize_conflict(path, examples)
    assert set(out) == {CLOSED_BOOK, "plain", "memory"}
    assert out["plain"]["memory_recall"] == 0 and out["plain"]["context_recall"] == 1
    assert out["memory"]["memory_recall"] == pytest.approx(2 / 3) and out["memory"]["adjusted_token_fraction"] == 0.5
    assert out["memory"]["known_n"] == 2 and out["memory"]["known_memory_recall"] == 0.5  # fact 2 was not known
    assert out[CLOSED_BOOK]["known_memory_recall"] == 1.0
