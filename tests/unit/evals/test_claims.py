"""SciFact claims as labelled claims, and the verdict metrics against hand counts."""

from __future__ import annotations

import pytest

from gatedrag.evals.claims import load_scifact, scifact_sentences, verdict_scores
from gatedrag.types import Passage


def test_the_dev_claims_have_the_documented_label_counts(data_dir):
    claims = load_scifact(data_dir / "scifact" / "claims_dev.jsonl")
    counts = {label: sum(c.label == label for c in claims) for label in ("supported", "refuted", "nei")}
    assert len(claims) == 300 and counts == {"supported": 124, "refuted": 64, "nei": 112}
    with_evidence = next(c for c in claims if c.evidence)
    assert all(isinstance(i, int) for v in with_evidence.evidence.values() for i in v)
    assert all(not c.evidence for c in claims if c.label == "nei")


def test_verdict_scores_match_hand_counts():
    s = verdict_scores(["supported", "supported", "refuted", "nei"], ["supported", "refuted", "refuted", "supported"])
    # supported: tp 1, fp 1, fn 1 -> 0.5; refuted: tp 1, fn 1 -> 2/3; nei: fp 1 -> 0
    assert s["f1"] == pytest.approx({"supported": 0.5, "refuted": 2 / 3, "nei": 0.0})
    assert s["accuracy"] == 0.5 and s["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 3)
    with pytest.raises(ValueError):
        verdict_scores(["nei"], [])


def test_the_official_corpus_gives_scifacts_sentence_indices(data_dir):
    import json

    source = scifact_sentences(data_dir / "scifact" / "corpus_official.jsonl")
    first = json.loads((data_dir / "scifact" / "corpus_official.jsonl").open().readline())
    passage = Passage(id=str(first["doc_id"]), title=first["title"], text=" ".join(first["abstract"]))
    assert source(passage) == [s.strip() for s in first["abstract"]]
    assert source(Passage(id="not-there", title="", text="One. Two.")) == ["One.", "Two."]
