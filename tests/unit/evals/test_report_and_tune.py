"""Report tables and plots from records; the threshold sweep end to end on the tiny model."""

import json

import pytest
from typer.testing import CliRunner

from gatedrag.cli.app import app
from gatedrag.config import DraftConfig, FlareRule, load_config
from gatedrag.errors import ConfigError
from gatedrag.evals.report import summarize
from gatedrag.evals.runner import QuestionRecord, RecordWriter, RunSummary, evaluate_configs, read_records
from gatedrag.evals.tuning import SweepRow, choose, fired_threshold, replay_draft, with_threshold
from gatedrag.types import Counts


def rec(i, em, retrievals, conf, tok):
    return QuestionRecord(
        id=f"q{i}",
        dataset="hotpotqa",
        method="m",
        question="?",
        answers=["x"],
        prediction="x" if em else "y",
        em=em,
        f1=em,
        confidence=conf,
        counts=Counts(retrievals=retrievals, llm_calls=1 + retrievals),
        signals={"token_rag": [tok, tok / 2]},
        seconds=2.0,
    )


def test_summary_numbers_by_hand():
    records = [rec(0, 1.0, 0, 0.9, 0.05), rec(1, 0.0, 2, 0.3, 0.4), rec(2, 1.0, 1, 0.8, 0.1), rec(3, 0.0, 1, 0.6, 0.3)]
    s = summarize(records, "hotpotqa", "m")
    assert s.em == 0.5 and s.retrievals == 1.0 and s.llm_calls == 2.0 and s.seconds == 2.0
    assert s.auroc["token_rag"] == 1.0 and s.auroc["confidence"] == 1.0  # wrong answers are the most uncertain
    # bins: 0.9 (acc 1), 0.3 (0), 0.8 (1), 0.6 (0) -> (0.1 + 0.3 + 0.2 + 0.6) / 4
    assert s.ece == pytest.approx(0.3)


def test_answer_contained_accuracy_is_scored_from_the_records():
    phrase = rec(0, 0.0, 0, 0.5, 0.1).model_copy(update={"prediction": "it was Paris, surely", "answers": ["Paris"]})
    label = rec(1, 1.0, 0, 0.5, 0.1).model_copy(update={"prediction": "yes", "answers": ["yes"], "metric": "accuracy"})
    s = summarize([phrase, rec(2, 0.0, 0, 0.5, 0.1), label], "hotpotqa", "m")
    assert s.em == pytest.approx(1 / 3) and s.acc == pytest.approx(2 / 3)


def test_report_writes_tables_and_plots(tmp_path):
    for method, ems in (("no-rag", [0, 0, 1, 0]), ("gated", [1, 0, 1, 1])):
        with RecordWriter(tmp_path / "hotpotqa" / f"{method}.jsonl") as w:
            for i, em in enumerate(ems):
                w.write(rec(i, float(em), i % 2, 0.2 + 0.2 * i, 0.3 - 0.05 * i))
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report.md").read_text()
    assert "| no-rag | 0.250 | 0.250 | 0.250 |" in text and "| gated | 0.750 | 0.750 | 0.750 |" in text
    assert text.index("| no-rag |") < text.index("| gated |")  # methods in their canonical order
    for name in ("em_vs_retrievals", "reliability", "signals"):
        assert (tmp_path / f"hotpotqa_{name}.png").stat().st_size > 1000
    empty = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert empty.exit_code == 1 and "no evaluation records" in empty.output


def test_report_compares_chosen_methods_on_their_common_questions(tmp_path):
    runs = {"no-rag": [0, 0, 1, 0], "gated": [1, 0, 1, 1], "candidate": [1, 1]}  # the candidate ran on 2 questions
    for method, ems in runs.items():
        with RecordWriter(tmp_path / "hotpotqa" / f"{method}.jsonl") as w:
            for i, em in enumerate(ems):
                w.write(rec(i, float(em), 1, 0.5, 0.1))
    assert CliRunner().invoke(app, ["report", str(tmp_path), "--no-plots"]).exit_code == 0
    every = (tmp_path / "report.md").read_text()
    assert "## hotpotqa (2 questions; only the 2 questions every method answered" in every
    out = tmp_path / "reports" / "baselines.md"
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--methods", "gated,no-rag", "--output", str(out)])
    assert result.exit_code == 0, result.output
    chosen = out.read_text()
    assert "## hotpotqa (4 questions)" in chosen and "| candidate |" not in chosen
    assert "| no-rag | 0.250 |" in chosen and "| gated | 0.750 |" in chosen
    assert (out.parent / "baselines_hotpotqa_reliability.png").exists()
    assert (tmp_path / "report.md").read_text() == every  # the default report is left as it was
    unknown = CliRunner().invoke(app, ["report", str(tmp_path), "--methods", "gated,dragon"])
    assert unknown.exit_code == 1 and "dragon" in unknown.output and "candidate" in unknown.output


def test_corpus_and_gain_signals_get_columns_with_their_coverage(tmp_path):
    records = []
    for i, em in enumerate([1.0, 0.0, 1.0, 0.0]):
        r = rec(i, em, 1, 0.5, 0.1)
        r.signals["entity_freq"] = [0.5 + 2 * (em == 0.0)]  # rarer question entities on the wrong answers
        if i < 3:  # no claim was extracted from the last answer
            r.signals["cooc"] = [float(em == 0.0)]
        records.append(r)
    s = summarize(records, "hotpotqa", "quco-rag")
    assert s.auroc["entity_freq"] == 1.0 and s.coverage["entity_freq"] == 4
    assert s.auroc["cooc"] == 1.0 and s.coverage["cooc"] == 3
    with RecordWriter(tmp_path / "hotpotqa" / "quco-rag.jsonl") as w:
        for r in records:
            w.write(r)
    assert CliRunner().invoke(app, ["report", str(tmp_path)]).exit_code == 0
    text = (tmp_path / "report.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| method | token_rag"))
    assert header.index("entity_freq") < header.index("cooc") < header.index("1 − confidence")
    assert "| 1.000 (1.00) [3] |" in text  # cooc: scored on the 3 questions that had a claim


def test_choose_prefers_em_then_fewer_retrievals():
    def row(v, em, ret):
        return SweepRow(
            value=v,
            summary=RunSummary(
                dataset="d",
                method=str(v),
                questions=10,
                em=em,
                f1=em,
                retrievals_per_q=ret,
                llm_calls_per_q=1,
                wall_s=1,
            ),
        )

    rows = [row(0.05, 0.4, 2.5), row(0.1, 0.4, 1.5), row(0.2, 0.3, 0.5)]
    assert choose(rows).value == 0.1
    assert choose(rows, max_retrievals=1.0).value == 0.2


def test_with_threshold_sets_and_adds_rules():
    cfg = with_threshold(load_config_default(), "flare", 0.6)
    flare = next(r for r in cfg.gate.rules if r.signal == "flare")
    assert flare.theta == 0.6 and flare.act
    assert next(r for r in with_threshold(cfg, "rind", 2.0).gate.rules if r.signal == "rind").threshold == 2.0


def load_config_default():
    from gatedrag.config import PipelineConfig

    return PipelineConfig()


TINY_PROMPT = "name: tiny\ninstruction: Answer.\ndemos: []\n"


def tiny_config(tiny_lm, tmp_path) -> str:
    """Save the tiny model and a one-line prompt under ``tmp_path``; the YAML that uses them."""
    model_dir = tmp_path / "tiny-model"
    tiny_lm.model.save_pretrained(model_dir)
    tiny_lm.tokenizer.save_pretrained(model_dir)
    (tmp_path / "tiny.yaml").write_text(TINY_PROMPT)
    return (
        f"model: {{name: {json.dumps(str(model_dir))}}}\nprompt: {json.dumps(str(tmp_path / 'tiny.yaml'))}\n"
        "decoding: {max_answer_tokens: 16, max_sentence_tokens: 8, batch_size: 2}\n"
    )


def test_tune_end_to_end_on_the_tiny_model(tiny_lm, data_dir, tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(tiny_config(tiny_lm, tmp_path))
    out = tmp_path / "tune"
    args = [
        "tune",
        "--dataset",
        "hotpotqa",
        "--signal",
        "token_rag",
        "--values",
        "0,1",
        "--limit",
        "2",
        "--out",
        str(out),
        "--data",
        str(data_dir),
        "--config",
        str(base),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tuned = load_config(out / "tuned_hotpotqa_token_rag.yaml")
    assert next(r for r in tuned.gate.rules if r.signal == "token_rag").threshold == 1.0  # same EM, fewer retrievals
    table = (out / "tune_hotpotqa_token_rag.md").read_text()
    assert "| 0 |" in table and "| 1 **(chosen)** |" in table
    ids = [json.loads(line)["id"] for line in (out / "hotpotqa" / "tune-token_rag-0.jsonl").read_text().splitlines()]
    dev = json.loads((data_dir / "hotpotqa" / "dev.json").read_text())
    assert ids == [dev[100]["_id"], dev[101]["_id"]]  # the dev split starts after the eval's 100
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0  # resumed: nothing new to run


def test_eval_cli_errors(tmp_path):
    bad = CliRunner().invoke(app, ["eval", "--dataset", "hotpotqa", "--methods", "self-rag", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown method" in bad.output


def test_eval_runs_your_own_configs_beside_the_baselines(tiny_lm, data_dir, tmp_path):
    common = tiny_config(tiny_lm, tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text(common)
    mine = tmp_path / "mine.yaml"
    mine.write_text(common + "policy: {retrieve_first: true}\n" + "gate: {rules: [{signal: flare, theta: 0.5}]}\n")
    out = tmp_path / "eval"
    args = ["eval", "--dataset", "hotpotqa", "--limit", "2", "--out", str(out), "--data", str(data_dir)]
    args += ["--config", str(base), "--methods", "no-rag", "--method", f"mine={mine}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in (out / "hotpotqa" / "mine.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["method"] == "mine" for r in records)
    assert all(r["counts"]["retrievals"] >= 1 for r in records)  # its own setting: retrieve first
    run = json.loads((out / "hotpotqa" / "mine.run.json").read_text())
    assert [r["signal"] for r in run["config"]["gate"]["rules"]] == ["flare"]
    assert (out / "hotpotqa" / "no-rag.jsonl").is_file()
    only = CliRunner().invoke(app, [*args[:-4], "--config", str(base), "--methods", "none", "--method", f"mine={mine}"])
    assert only.exit_code == 0, only.output  # resumed: already done


@pytest.mark.parametrize(
    ("value", "message"),
    [("mine", "NAME=CONFIG"), ("gated=x.yaml", "already taken"), ("a/b=x.yaml", "letters, digits")],
)
def test_eval_cli_refuses_bad_custom_methods(tmp_path, value, message):
    result = CliRunner().invoke(
        app, ["eval", "--dataset", "hotpotqa", "--methods", "none", "--method", value, "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and message in result.output


def draft_rec(i, *, em, flare, retrievals, text):
    r = rec(i, em, retrievals, 0.5, 0.1)
    return r.model_copy(update={"signals": {"flare": flare}, "text": text})


def test_replay_draft_keeps_a_draft_only_when_no_sentence_crosses_the_threshold():
    closed = [
        draft_rec(0, em=1.0, flare=[0.1, 0.3], retrievals=0, text="c0"),  # confident and right
        draft_rec(1, em=0.0, flare=[0.2, 0.9], retrievals=0, text="c1"),  # one doubtful sentence, wrong
        draft_rec(2, em=0.0, flare=[0.5], retrievals=0, text="c2"),
    ]
    full = [
        draft_rec(0, em=0.0, flare=[0.1], retrievals=2, text="f0"),
        draft_rec(1, em=1.0, flare=[0.1], retrievals=1, text="f1"),
        draft_rec(2, em=1.0, flare=[0.1], retrievals=1, text="f2"),
    ]
    assert fired_threshold("flare", 0.2) == pytest.approx(0.8) and fired_threshold("gnll", 3.0) == 3.0
    # FLARE theta 0.6: a sentence is doubtful when 1 - min p > 0.4 -> drafts 1 and 2 are replaced
    row = replay_draft("flare", 0.6, closed, full)
    assert (row.kept, row.em, row.retrievals_per_q) == (pytest.approx(1 / 3), 1.0, pytest.approx(2 / 3))
    # theta 0.05: only values above 0.95 are doubtful -> every draft kept, no retrieval
    row = replay_draft("flare", 0.05, closed, full)
    assert (row.kept, row.em, row.retrievals_per_q) == (1.0, pytest.approx(1 / 3), 0.0)
    # theta 1.0: every sentence is doubtful -> the with-passages answers
    row = replay_draft("flare", 1.0, closed, full)
    assert (row.kept, row.em, row.retrievals_per_q) == (0.0, pytest.approx(2 / 3), pytest.approx(4 / 3))
    with pytest.raises(ConfigError, match="do not trace 'gnll'"):
        replay_draft("gnll", 1.0, closed, full)


def test_tune_draft_end_to_end_replays_what_a_draft_run_answers(tiny_lm, data_dir, tmp_path):
    tiny = tiny_config(tiny_lm, tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text(tiny + "gate: {rules: [{signal: token_rag, threshold: 1.0}]}\n")
    out = tmp_path / "tune"
    args = ["tune", "--draft", "--dataset", "hotpotqa", "--signal", "flare", "--values", "0.001,1", "--limit", "2"]
    args += ["--out", str(out), "--data", str(data_dir), "--config", str(base), "--max-retrievals", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (out / "tune_draft_hotpotqa_flare.md").read_text()
    assert "| 0.001 **(chosen)** | 100% |" in table and "| 1 | 0% |" in table
    tuned = load_config(out / "tuned_draft_hotpotqa_flare.yaml")
    assert tuned.draft.rules[0].theta == 0.001 and not tuned.policy.retrieve_first
    assert tuned.gate.rules[0].threshold == 1.0  # the base gate is kept

    (closed_file,) = (out / "hotpotqa").glob("tune-draft-closed-book-*.jsonl")
    closed = read_records(closed_file)
    (full_file,) = (out / "hotpotqa").glob("tune-draft-with-passages-*.jsonl")
    full = read_records(full_file)
    assert [r.counts.retrievals for r in closed] == [0, 0] and all(r.counts.retrievals >= 1 for r in full)
    for theta, expected in [(0.001, closed), (1.0, full)]:  # a real draft run answers what the replay says
        cfg = tuned.model_copy(update={"draft": DraftConfig(rules=[FlareRule(theta=theta)])})
        got: dict = {}
        evaluate_configs(
            "hotpotqa", {f"draft-{theta}": cfg}, out=out, limit=2, offset=100, data_dir=data_dir, records_out=got
        )
        assert [r.text for r in got[f"draft-{theta}"]] == [r.text for r in expected]
        extra = 0 if theta < 0.5 else 1  # an abandoned draft's retrieval is the with-passages run's first
        assert [r.counts.retrievals for r in got[f"draft-{theta}"]] == [r.counts.retrievals * extra for r in expected]
    # another base that differs in its retrieval settings reuses the closed-book run
    other = tmp_path / "other.yaml"
    other.write_text(base.read_text() + "retrieval: {carry_passages: 3}\n")
    again = CliRunner().invoke(app, [str(other) if a == str(base) else a for a in args])
    assert again.exit_code == 0, again.output
    assert len(list((out / "hotpotqa").glob("tune-draft-with-passages-*.jsonl"))) == 2
    assert len(list((out / "hotpotqa").glob("tune-draft-closed-book-*.jsonl"))) == 1
    bad = CliRunner().invoke(app, [*args[:5], "cooc", *args[6:]])
    assert bad.exit_code != 0 and "replayable signals" in bad.output


def test_significance_by_hand():
    from gatedrag.evals.significance import mcnemar_exact, paired, wilson_interval

    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)  # 2 * (C(10,0) + C(10,1)) / 2**10
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 20)[0] == 0.0 and 0.15 < wilson_interval(0, 20)[1] < 0.17  # 0.1611
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    mine = [rec(i, em, 1, 0.5, 0.1) for i, em in enumerate([1.0, 1.0, 0.0, 1.0, 0.0])]
    ref = [rec(i, em, 0, 0.5, 0.1) for i, em in enumerate([0.0, 1.0, 1.0, 0.0])]  # q4 unanswered by the reference
    c = paired(mine, ref, "m", "ref")
    assert (c.questions, c.gained, c.lost) == (4, 2, 1) and c.p_value == 1.0


def test_report_tests_methods_against_a_reference(tmp_path):
    for method, ems in (("no-rag", [0, 0, 1, 0, 0, 0]), ("gated", [1, 1, 1, 1, 1, 0]), ("flare", [1, 0, 0, 0, 0, 0])):
        with RecordWriter(tmp_path / "hotpotqa" / f"{method}.jsonl") as w:
            for i, em in enumerate(ems):
                w.write(rec(i, float(em), 1, 0.5, 0.1))
    assert CliRunner().invoke(app, ["report", str(tmp_path), "--no-plots"]).exit_code == 0
    text = (tmp_path / "report.md").read_text()
    assert "| gated | 0.833 [0.44, 0.97] | – | – | – |" in text  # the default reference
    assert "| no-rag | 0.167 [0.03, 0.56] | 0 | 4 | 0.125 |" in text
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--no-plots", "--reference", "no-rag"])
    assert result.exit_code == 0, result.output
    assert "| gated | 0.833 [0.44, 0.97] | 4 | 0 | 0.125 |" in (tmp_path / "report.md").read_text()
    bad = CliRunner().invoke(app, ["report", str(tmp_path), "--reference", "dragin"])
    assert bad.exit_code == 1 and "dragin" in bad.output
