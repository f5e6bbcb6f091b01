"""Answer selection: candidates from every rung, scored by P(True) or a combiner, traced."""

from __future__ import annotations

import pytest
from helpers.scripted import ScriptedLM

from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError
from gatedrag.events import CandidatesScored, Degraded
from gatedrag.gate.combiner import Calibration, Combiner
from gatedrag.gate.select import expected_features
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage

CLOSED = [("Ed Wood was directed by someone.", 0.95), ("So the answer is Steven Spielberg.", 0.3)]
CONTEXT = [("Ed Wood was directed by someone.", 0.95), ("So the answer is Tim Burton.", 0.95)]
RETRIEVER = BM25Retriever.build([Passage(id="ew", title="Ed Wood", text="Ed Wood is a film by Tim Burton.")])


def config(**select) -> PipelineConfig:
    return PipelineConfig.model_validate({"policy": {"select": select}})


def test_the_candidate_p_true_prefers_is_returned_and_every_candidate_traced():
    lm = ScriptedLM(CLOSED, CONTEXT, p_true={"Tim Burton": 0.9, "Steven Spielberg": 0.2})
    answer = GatedRAG(lm, RETRIEVER, config()).ask("Who directed Ed Wood?")
    sel = answer.selection
    assert sel is not None and sel.scorer == "p_true"
    assert [(c.answer, c.rung) for c in sel.candidates] == [
        ("Steven Spielberg", "closed_book"),
        ("Tim Burton", "retrieved"),
    ]
    assert [round(c.score, 2) for c in sel.candidates] == [0.2, 0.9] and sel.chosen == 1
    assert answer.answer == "Tim Burton" and sel.candidates[1].passages == ["ew"]
    assert "Context:" in lm.scored[1] and "Context:" not in lm.scored[0]  # each read with its own passages
    assert sel.candidates[0].agreement == 0.0 and sel.candidates[0].retrievals == 0
    assert isinstance(answer.events[-2], CandidatesScored)  # just before Finished


def test_a_discarded_candidate_can_win():
    lm = ScriptedLM(CLOSED, CONTEXT, p_true={"Tim Burton": 0.1, "Steven Spielberg": 0.8})
    answer = GatedRAG(lm, RETRIEVER, config()).ask("Who directed Ed Wood?")
    assert answer.answer == "Steven Spielberg" and "Tim Burton" in answer.text


def test_a_combiner_scores_and_its_calibrated_probability_is_the_confidence(tmp_path):
    cfg = config(combiner=str(tmp_path / "c.json"))
    features = ["rung:closed_book", "p_true"]
    combiner = Combiner(
        features=features,
        weights=[3.0, 0.0],
        bias=0.0,
        mean=[0.5, 0.5],
        scale=[0.5, 0.25],
        calibration=Calibration(kind="isotonic", x=[0.0, 1.0], y=[0.1, 0.7]),
    )
    combiner.save(tmp_path / "c.json")
    lm = ScriptedLM(CLOSED, CONTEXT, p_true={"Tim Burton": 0.9})
    with pytest.raises(ConfigError, match="combiner"):
        GatedRAG(lm, RETRIEVER, cfg)
    from gatedrag.factory import load_combiner

    answer = GatedRAG(lm, RETRIEVER, cfg, combiner=load_combiner(cfg)).ask("Who directed Ed Wood?")
    sel = answer.selection
    assert sel.scorer == "combiner c.json" and answer.answer == "Steven Spielberg"
    assert answer.confidence == pytest.approx(sel.candidates[0].score) and 0.1 <= answer.confidence <= 0.7


def test_combiner_files_round_trip_and_refuse_other_features(tmp_path):
    c = Combiner(features=["p_true", "signal:rind"], weights=[1.0, 1.0], bias=0.0, mean=[0, 0], scale=[1, 1])
    path = c.save(tmp_path / "c.json")
    assert Combiner.load(path) == c
    with pytest.raises(ConfigError, match="signal:rind"):
        Combiner.load(path, expect_features=expected_features(PipelineConfig()))
    (tmp_path / "bad.json").write_text('{"features": ["x"], "weights": [1, 2]}')
    with pytest.raises(ConfigError, match="not a gatedrag combiner"):
        Combiner.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="not found"):
        Combiner.load(tmp_path / "missing.json")
    assert "signal:token_rag" in expected_features(PipelineConfig()) and "p_true" in expected_features(PipelineConfig())


def test_a_failing_verifier_degrades_to_the_answer_confidence():
    lm = ScriptedLM(CLOSED, CONTEXT, fail_verify=True)
    answer = GatedRAG(lm, RETRIEVER, config()).ask("Who directed Ed Wood?")
    assert any(isinstance(e, Degraded) and e.what == "verify" for e in answer.events) and answer.degraded
    sel = answer.selection
    assert sel.scorer == "confidence" and answer.answer == "Tim Burton"  # 0.95 beats 0.3
    assert all(c.p_true is None for c in sel.candidates)


def test_records_carry_the_candidates():
    from gatedrag.evals.datasets import Example
    from gatedrag.evals.runner import QuestionRecord, record_from_answer

    lm = ScriptedLM(CLOSED, CONTEXT, p_true={"Tim Burton": 0.9})
    answer = GatedRAG(lm, RETRIEVER, config()).ask("Who directed Ed Wood?")
    ex = Example(id="1", dataset="d", question="Who directed Ed Wood?", answers=["Tim Burton"])
    record = record_from_answer(ex, "m", answer)
    assert [c.answer for c in record.candidates] == ["Steven Spielberg", "Tim Burton"] and record.scorer == "p_true"
    assert QuestionRecord.model_validate_json(record.model_dump_json()) == record


def test_select_needs_something_to_score_with():
    from gatedrag.config import parse_config

    with pytest.raises(ConfigError, match="verify"):
        parse_config({"policy": {"select": {"verify": False}}})


def test_sampled_answers_score_agreement_in_one_round():
    lm = ScriptedLM(CLOSED, CONTEXT, sampled=["Tim Burton", "tim burton", "Spielberg"])
    answer = GatedRAG(lm, RETRIEVER, config(verify=False, samples=3)).ask("Who directed Ed Wood?")
    sel = answer.selection
    assert sel.scorer == "samples" and answer.answer == "Tim Burton"
    spielberg, burton = sel.candidates
    assert burton.sample_agreement == pytest.approx(2 / 3) and spielberg.sample_agreement == 0.0
    assert 0 < spielberg.sample_agreement_soft < burton.sample_agreement_soft
    both = GatedRAG(lm, RETRIEVER, config(samples=3)).ask("Who directed Ed Wood?").selection
    assert both.scorer == "p_true+samples"
    assert both.candidates[1].score == pytest.approx((0.5 + 2 / 3) / 2)  # unfitted: the mean of the two
    assert "sample_agreement" in expected_features(config(samples=2))


def test_a_run_is_fingerprinted_by_its_combiners_content(tmp_path):
    from gatedrag.evals.runner import fingerprint

    path = tmp_path / "c.json"
    Combiner(features=["p_true"], weights=[1.0], bias=0.0, mean=[0.5], scale=[0.2]).save(path)
    cfg = config(combiner=str(path))

    def fp():
        return fingerprint(cfg, dataset="d", method="m", corpus_sha256="x", model="m")["config"]["policy"]["select"]

    first = fp()
    assert "combiner" not in first and len(first["combiner_sha256"]) == 64
    Combiner(features=["p_true"], weights=[2.0], bias=0.0, mean=[0.5], scale=[0.2]).save(path)
    assert fp()["combiner_sha256"] != first["combiner_sha256"]
