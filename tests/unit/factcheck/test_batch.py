"""The claims-file batch mode: records with the input's fields, killed with SIGKILL mid-run and
rerun with nothing lost or duplicated, a changed configuration refused, a refused claim recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.factlm import FactLM

from gatedrag.errors import ConfigError
from gatedrag.factcheck.batch import RECORDS, ClaimRecord, check_claims, sweep_claims
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.claims import Claim
from gatedrag.records import read_jsonl

NAMES = [f"Claim{i:02d}" for i in range(12)]
DRIVER = """
import sys, time
from pathlib import Path
from helpers.factlm import FactLM
from gatedrag.factcheck.batch import check_claims
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.claims import Claim

names = [f"Claim{i:02d}" for i in range(12)]
lm = FactLM(closed={n: [(" True", 0.9), (" False", 0.05)] for n in names})
fast = lm.next_token
lm.next_token = lambda prompts: (time.sleep(0.15), fast(prompts))[1]  # slowed, still a FactLM (the backend)
checker = FactChecker(lm, None, FactCheckConfig(batch_size=2, rationales=1))
claims = [Claim(id=str(i), claim=f"{n} is so.", fields={"n": i}) for i, n in enumerate(names)]
check_claims(checker, claims, Path(sys.argv[1]), on_record=lambda r, d, t: print(d, flush=True))
"""


def checker(**config) -> FactChecker:
    lm = FactLM(closed={n: [(" True", 0.9), (" False", 0.05)] for n in NAMES})
    return FactChecker(lm, None, FactCheckConfig(batch_size=2, rationales=1, **config))


def claims() -> list[Claim]:
    return [Claim(id=str(i), claim=f"{n} is so.", fields={"n": i}) for i, n in enumerate(NAMES)]


def test_a_run_killed_mid_way_resumes_with_nothing_lost_or_duplicated(tmp_path):
    tests = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    while int(proc.stdout.readline() or 99) < 5:  # a few records written, the run still going
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = read_jsonl(tmp_path / RECORDS, ClaimRecord)
    assert 5 <= len(partial) < 12
    with (tmp_path / RECORDS).open("a") as f:
        f.write('{"id": "torn')  # as if killed in the middle of a write
    records = check_claims(checker(), claims(), tmp_path)
    on_disk = read_jsonl(tmp_path / RECORDS, ClaimRecord)
    assert [r.id for r in records] == [str(i) for i in range(12)]
    assert sorted(r.id for r in on_disk) == sorted(str(i) for i in range(12))  # each once
    assert [r.fields["n"] for r in records] == list(range(12)) and all(r.label == "supported" for r in records)
    assert [r.model_dump() for r in on_disk[: len(partial)]] == [r.model_dump() for r in partial]


def test_records_carry_the_verdict_and_a_changed_configuration_is_refused(tmp_path):
    records = check_claims(checker(), claims()[:3], tmp_path)
    assert [(r.label, r.route, r.searches) for r in records] == [("supported", "direct", 0)] * 3
    assert json.loads((tmp_path / "run.json").read_text())["model"] == "factlm"
    with pytest.raises(ConfigError, match=r"another setup \(config.top_k: 3 -> 5\)"):
        check_claims(checker(top_k=5), claims(), tmp_path)
    again = check_claims(checker(), claims()[:3], tmp_path)  # nothing to do: the same records
    assert [r.model_dump() for r in again] == [r.model_dump() for r in records]
    run = json.loads((tmp_path / "run.json").read_text())
    del run["config"]["rationale_candidates"]  # as if written before that setting existed
    (tmp_path / "run.json").write_text(json.dumps(run))
    assert len(check_claims(checker(), claims()[:4], tmp_path)) == 4  # at its default: the same setup
    with pytest.raises(ConfigError, match="rationale_candidates"):
        check_claims(checker(rationale_candidates=5), claims(), tmp_path)


def test_records_of_another_backend_are_not_resumed(tmp_path):
    """The same weights on llama.cpp and on transformers give different verdicts: a run started on
    one and resumed on the other would mix them (it nearly happened to the SciFact dev records)."""

    class OtherBackend(FactLM):
        pass

    check_claims(checker(), claims()[:2], tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["backend"] == "helpers.factlm.FactLM"
    other = FactChecker(OtherBackend(closed={}), None, checker().config)
    with pytest.raises(ConfigError, match=r"backend: 'helpers\.factlm\.FactLM' -> '.*OtherBackend'"):
        check_claims(other, claims(), tmp_path)
    run = json.loads((tmp_path / "run.json").read_text())
    del run["backend"]  # written before the backend was recorded: which one wrote it is unknown
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(ConfigError, match=r"backend: None -> 'helpers\.factlm\.FactLM'"):
        check_claims(checker(), claims(), tmp_path)


def test_a_claim_the_checker_refuses_is_recorded_as_failed_and_the_rest_go_on(tmp_path):
    bad = [*claims()[:2], Claim(id="x", claim="x" * 3000), *claims()[2:3]]  # longer than a claim may be
    records = check_claims(checker(), bad, tmp_path)
    failed = next(r for r in records if r.id == "x")
    assert failed.label is None and failed.degraded and "at most 2000" in (failed.error or "")
    assert [r.label for r in records if r.id != "x"] == ["supported"] * 3


def test_a_sweep_writes_each_variant_as_its_own_run_and_fills_in_only_what_is_missing(tmp_path):
    variants = {"never": FactCheckConfig(batch_size=2, rationales=1, force_route="direct"), "routed": checker().config}
    swept = sweep_claims(checker(), claims()[:5], variants, tmp_path)
    for name, variant in variants.items():
        alone = check_claims(FactChecker(checker().lm, None, variant), claims()[:5], tmp_path / "alone" / name)
        strip = {"seconds"}
        assert [r.model_dump(exclude=strip) for r in swept[name]] == [r.model_dump(exclude=strip) for r in alone]
    assert all(r.tau is not None and r.gamma is not None and r.llm_calls == 1 + 2 + 2 for r in swept["never"])
    assert "p_label" in swept["never"][0].features
    assert swept["never"][0].closed_masses == pytest.approx({"supported": 0.9, "refuted": 0.05})
    assert not swept["never"][0].evidence_masses
    lines = (tmp_path / "routed" / RECORDS).read_text().splitlines()
    (tmp_path / "routed" / RECORDS).write_text("\n".join(lines[:2]) + "\n")  # as if killed between the files' writes
    again = sweep_claims(checker(), claims()[:6], variants, tmp_path)
    assert [len(read_jsonl(tmp_path / n / RECORDS, ClaimRecord)) for n in variants] == [6, 6]  # each claim once
    assert [r.model_dump() for r in again["never"][:5]] == [r.model_dump() for r in swept["never"]]
    with pytest.raises(ConfigError, match="another setup"):
        sweep_claims(checker(), claims(), {"never": checker(top_k=5).config}, tmp_path)


def test_a_second_writer_on_the_same_out_is_refused(tmp_path):
    from gatedrag.errors import RunInUse
    from gatedrag.records import RunLock

    tmp_path.mkdir(exist_ok=True)
    with RunLock(tmp_path), pytest.raises(RunInUse, match="is writing"):
        check_claims(checker(), claims()[:2], tmp_path)
    assert not read_jsonl(tmp_path / RECORDS, ClaimRecord)
    variants = {"never": FactCheckConfig(batch_size=2, rationales=1, force_route="direct")}
    (tmp_path / "sweep" / "never").mkdir(parents=True)
    with RunLock(tmp_path / "sweep" / "never"), pytest.raises(RunInUse):
        sweep_claims(checker(), claims()[:2], variants, tmp_path / "sweep")
    assert len(check_claims(checker(), claims()[:2], tmp_path)) == 2  # free again
