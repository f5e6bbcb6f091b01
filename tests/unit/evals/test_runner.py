"""Resumable records: kill -9 mid-run and resume, torn lines, refused setup changes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError
from gatedrag.evals.baselines import method_config
from gatedrag.evals.runner import check_fingerprint, fingerprint, read_records

FAKE = Path(__file__).with_name("fake_run.py")


def run_fake(out: Path, n: int, delay: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FAKE), str(out), str(n), str(delay)], stdout=subprocess.PIPE, text=True
    )


def test_killed_run_resumes_without_losing_or_duplicating(tmp_path):
    out = tmp_path / "fake.jsonl"
    proc = run_fake(out, 30, 0.3)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 7):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_records(out)
    assert 7 <= len(partial) < 30
    with out.open("a") as f:  # what a write torn by the kill looks like
        f.write('{"version": 1, "id": "q9')
    finished = run_fake(out, 30, 0.0)
    assert finished.communicate(timeout=60)[0].strip() == "30"
    ids = [r.id for r in read_records(out)]
    assert ids == [f"q{i}" for i in range(30)]  # each once, in order
    assert [r.id for r in read_records(out)][: len(partial)] == [r.id for r in partial]


def test_torn_tail_is_ignored_and_repaired_but_a_bad_middle_line_is_an_error(tmp_path):
    good = json.dumps(
        {
            "id": "a",
            "dataset": "d",
            "method": "m",
            "question": "q",
            "answers": ["x"],
            "prediction": "x",
            "em": 1,
            "f1": 1,
        }
    )
    path = tmp_path / "r.jsonl"
    path.write_text(good + "\n" + good.replace('"a"', '"b"') + "\n" + good[:20])
    assert [r.id for r in read_records(path)] == ["a", "b"]
    read_records(path, repair=True)
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 2
    path.write_text(good + "\n" + "garbage\n" + good + "\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_records(path)


def test_a_changed_setup_is_refused_but_execution_settings_may_change(tmp_path):
    run = tmp_path / "hotpotqa" / "flare.run.json"
    cfg = method_config("flare", "hotpotqa")

    def fp(c):
        return fingerprint(c, dataset="hotpotqa", method="flare", corpus_sha256="abc", model=c.model.name)

    check_fingerprint(run, fp(cfg))
    faster = PipelineConfig.model_validate(
        cfg.model_dump(mode="json") | {"decoding": cfg.decoding.model_dump(mode="json") | {"batch_size": 32}}
    )
    check_fingerprint(run, fp(faster))  # batch size does not change answers
    changed = method_config("flare", "hotpotqa", PipelineConfig.model_validate({"decoding": {"max_answer_tokens": 64}}))
    with pytest.raises(ConfigError, match="max_answer_tokens: 128 -> 64"):
        check_fingerprint(run, fp(changed))
    other_model = method_config("flare", "hotpotqa", PipelineConfig.model_validate({"model": {"name": "gemma-3-270m"}}))
    with pytest.raises(ConfigError, match="another setup"):
        check_fingerprint(run, fp(other_model))
    with pytest.raises(ConfigError, match="corpus_sha256"):
        check_fingerprint(
            run, fingerprint(cfg, dataset="hotpotqa", method="flare", corpus_sha256="zzz", model=cfg.model.name)
        )


def test_a_setting_added_later_at_its_default_does_not_break_resume(tmp_path):
    run = tmp_path / "hotpotqa" / "sr-rag.run.json"
    cfg = method_config("sr-rag", "hotpotqa")
    current = fingerprint(cfg, dataset="hotpotqa", method="sr-rag", corpus_sha256="abc", model=cfg.model.name)
    older = json.loads(json.dumps(current))  # as written by a gatedrag without two of today's settings
    del older["config"]["policy"]["paper"]["accept_after_retrieval"]
    del older["config"]["policy"]["check_final_sentence"]
    run.parent.mkdir(parents=True)
    run.write_text(json.dumps(older))
    check_fingerprint(run, current)  # both are at their defaults: the old behaviour, accepted
    changed = json.loads(json.dumps(current))
    changed["config"]["policy"]["paper"]["accept_after_retrieval"] = "rest"  # a new setting, not at its default
    with pytest.raises(ConfigError, match="accept_after_retrieval: None -> 'rest'"):
        check_fingerprint(run, changed)
    removed = json.loads(json.dumps(older))
    del removed["config"]["policy"]["max_retrievals"]  # an old key missing from the new one still counts
    run.write_text(json.dumps(current))
    with pytest.raises(ConfigError, match="max_retrievals"):
        check_fingerprint(run, removed)


def test_run_method_gives_each_question_its_passages(tmp_path):
    from gatedrag.config import PipelineConfig
    from gatedrag.evals.datasets import Example
    from gatedrag.evals.runner import run_method
    from gatedrag.types import Answer, Passage

    seen = []

    class Recording:
        config = PipelineConfig.model_validate({"decoding": {"batch_size": 2}})

        def batch(self, questions, passages=None):
            seen.append(passages)
            return [Answer(question=q, text="So the answer is x.", answer="x", confidence=0.5) for q in questions]

    examples = [Example(id=f"q{i}", dataset="fake", question=f"question {i}", answers=["x"]) for i in range(3)]
    run_method(Recording(), examples, tmp_path / "m.jsonl", method="m", given=lambda e: [Passage(id=e.id, text="t")])
    assert [[[p.id for p in ps] for ps in batch] for batch in seen] == [[["q0"], ["q1"]], [["q2"]]]


def test_a_second_process_on_the_same_records_is_refused_and_a_killed_ones_lock_is_free(tmp_path, data_dir):
    from gatedrag.errors import RunInUse
    from gatedrag.evals.runner import evaluate_configs
    from gatedrag.records import RunLock

    records = tmp_path / "hotpotqa" / "gated.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from gatedrag.records import RunLock; "
            f"lock = RunLock(Path({str(records)!r})).acquire(); print('held', flush=True); import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    cfg = method_config("gated", "hotpotqa")
    with pytest.raises(RunInUse, match=rf"pid {holder.pid}\) is writing .*gated.jsonl"):
        evaluate_configs("hotpotqa", {"gated": cfg}, out=tmp_path, limit=1, data_dir=data_dir)  # before the model loads
    assert not records.exists()  # nothing written
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(records):  # the operating system released the killed process's lock
        pass
