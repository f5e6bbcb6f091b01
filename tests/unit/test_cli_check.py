"""`gatedrag check`: the verdict card, --json, a claims file into --out (resumed), bad input."""

from __future__ import annotations

import json
from types import SimpleNamespace

from helpers.factlm import FactLM, OnePassage
from typer.testing import CliRunner

import gatedrag.cli.check as check_cli
from gatedrag.cli.app import app
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.routing import RoutingConfig


def fake(monkeypatch):
    lm = FactLM(
        closed={"Alpha": [(" True", 0.9), (" False", 0.05)], "Water": [(" True", 0.5), (" False", 0.45)]},
        evidence={"Water": [(" False", 0.85), (" True", 0.1)]},
        phi={"Alpha": 0.1, "Water": 0.9},
    )
    checker = FactChecker(
        lm,
        OnePassage("Boiling point", "Water boils at 100 C."),
        FactCheckConfig(routing=RoutingConfig(alpha=0.4, beta=0.5), rationales=1),
    )
    loads: list[int] = []
    monkeypatch.setattr(check_cli, "load_checker", lambda config, corpus, calibration: loads.append(1) or checker)
    return loads


def test_one_claim_prints_a_verdict_card_and_json(monkeypatch):
    fake(monkeypatch)
    result = CliRunner().invoke(app, ["check", "Water boils at 90 C."])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "REFUTED" in out and "confidence 0.89" in out and "evidence: Boiling point" in out
    assert "route: deep_search" in out and "search 1: Water boils at 90 C." in out
    result = CliRunner().invoke(app, ["check", "Alpha is so.", "--json"])
    verdict = json.loads(result.output)
    assert result.exit_code == 0 and verdict["label"] == "supported" and verdict["route"] == "direct"
    assert verdict["events"][-1]["type"] == "verdict_given"


def test_a_claims_file_goes_to_out_and_a_rerun_resumes(monkeypatch, tmp_path):
    loads = fake(monkeypatch)
    claims = tmp_path / "claims.jsonl"
    claims.write_text('{"id": 1, "claim": "Alpha is so.", "topic": "a"}\n{"id": 2, "claim": "Water boils at 90 C."}\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["check", "--claims", str(claims), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 claims: 1 supported, 1 refuted, 0 not enough info" in result.output
    records = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"], r["fields"]) for r in records] == [
        ("1", "supported", {"topic": "a"}),
        ("2", "refuted", {}),
    ]
    again = CliRunner().invoke(app, ["check", "--claims", str(claims), "--out", str(out)])
    assert again.exit_code == 0 and len((out / "verdicts.jsonl").read_text().splitlines()) == 2
    assert len(loads) == 2


def test_bad_input_is_refused_before_the_model_loads(monkeypatch, tmp_path):
    loads = fake(monkeypatch)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "claim": "A."}\n{"id": 2}\n')
    cases = [
        (["check", ""], "empty"),
        (["check"], "give one claim"),
        (["check", "A.", "--claims", str(bad), "--out", str(tmp_path)], "not both"),
        (["check", "--claims", str(bad)], "needs --out"),
        (["check", "--claims", str(bad), "--out", str(tmp_path / "o")], "line 2"),
        (["check", "--claims", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")], "no claims file"),
    ]
    for args, why in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and why in result.output, (args, result.output)
    assert loads == []


def test_the_config_files_factcheck_section_configures_the_checker(monkeypatch, tmp_path):
    import gatedrag.factory as factory

    parts = SimpleNamespace(lm=FactLM(closed={"Alpha": [(" True", 0.9)]}), retriever=OnePassage("t", "x"))
    monkeypatch.setattr(factory, "build_components", lambda cfg, progress=None: parts)
    (tmp_path / "tuned.yaml").write_text("factcheck:\n  routing: {alpha: 0.7, beta: 0.2}\n  rationales: 2\n")
    checker = check_cli.load_checker(tmp_path / "tuned.yaml", None, None)
    assert checker.config.routing == RoutingConfig(alpha=0.7, beta=0.2) and checker.config.rationales == 2
    assert check_cli.load_checker(None, None, None).config == FactCheckConfig()
