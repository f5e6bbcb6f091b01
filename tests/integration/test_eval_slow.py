"""Every method on 5 real HotpotQA questions with the real default model (slow: ~10 min on 2 CPU cores)."""

import pytest

from gatedrag.evals.baselines import METHODS
from gatedrag.evals.report import write_report
from gatedrag.evals.runner import evaluate, read_records

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_every_method_on_five_real_questions(data_dir, tmp_path):
    summaries = evaluate("hotpotqa", list(METHODS), out=tmp_path, limit=5, data_dir=data_dir)
    assert [s.method for s in summaries] == list(METHODS)
    by = {s.method: s for s in summaries}
    assert by["no-rag"].retrievals_per_q == 0 and by["sr-rag"].retrievals_per_q == 1
    assert by["fs-rag"].retrievals_per_q >= 1 and by["fl-rag"].retrievals_per_q >= 1
    assert by["gated"].retrievals_per_q <= 3
    for method in METHODS:
        records = read_records(tmp_path / "hotpotqa" / f"{method}.jsonl")
        assert len(records) == 5 and len({r.id for r in records}) == 5
        assert all(not r.error and r.signals["token_rag"] for r in records)
        assert all(r.counts.llm_calls >= 1 and r.counts.generated_tokens > 0 for r in records)
    dragin = read_records(tmp_path / "hotpotqa" / "dragin.jsonl")
    assert all("rind" in r.signals for r in dragin)  # attention read from the real model
    report = write_report(tmp_path).read_text()
    assert all(f"| {m} |" in report for m in METHODS)
