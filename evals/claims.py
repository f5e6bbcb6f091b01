"""Labelled claims for the fact-checking evaluation (SciFact's official format) and verdict metrics.

SciFact (``../shared/data/scifact``): ``id, claim, evidence {doc_id: [{sentences, label}]},
cited_doc_ids``; a claim with ``evidence == {}`` has none (not enough information). Labels map
``SUPPORT`` -> ``supported``, ``CONTRADICT`` -> ``refuted``, no evidence -> ``nei``; a claim whose
documents disagree (never in the dev set) takes the label most of its documents give.

Example:
    >>> s = verdict_scores(["supported", "refuted", "nei", "nei"], ["supported", "nei", "nei", "refuted"])
    >>> s["accuracy"], round(s["macro_f1"], 3), s["f1"]["supported"]
    (0.5, 0.5, 1.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.factcheck.certainty import LABELS, Label
from gatedrag.factcheck.sentences import split_sentences
from gatedrag.types import Passage

from .datasets import _read_json, _records

SCIFACT_LABELS: dict[str, Label] = {"SUPPORT": "supported", "CONTRADICT": "refuted"}


class LabelledClaim(BaseModel):
    """A claim with its gold verdict and, for each evidence document, the indices of its rationale sentences."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    claim: str
    label: Label
    evidence: dict[str, list[int]] = Field(default_factory=dict)
    cited_doc_ids: list[str] = Field(default_factory=list)


def load_scifact(path: Path, *, limit: int | None = None) -> list[LabelledClaim]:
    """The claims of a SciFact claims file (JSONL, official format), in file order."""
    rows = _records(_read_json(path, "scifact"), path, "scifact", ["id", "claim", "evidence"])
    out = []
    for r in rows[:limit]:
        votes: Counter[Label] = Counter()
        evidence: dict[str, list[int]] = {}
        for doc, sets in (r["evidence"] or {}).items():
            for s in sets:
                votes[SCIFACT_LABELS[s["label"]]] += 1
                evidence.setdefault(str(doc), []).extend(int(i) for i in s["sentences"])
        label: Label = votes.most_common(1)[0][0] if votes else "nei"
        out.append(
            LabelledClaim(
                id=str(r["id"]),
                claim=str(r["claim"]),
                label=label,
                evidence={d: sorted(set(v)) for d, v in evidence.items()},
                cited_doc_ids=[str(d) for d in r.get("cited_doc_ids") or []],
            )
        )
    return out


def scifact_sentences(path: Path) -> Callable[[Passage], list[str]]:
    """A sentence source for the fact checker: each abstract's sentences as SciFact's official
    corpus (``corpus_official.jsonl``: ``doc_id, title, abstract [sentences]``) lists them, so the
    indices reported are SciFact's; a passage not in it is cut at sentence ends."""
    rows = _records(_read_json(path, "scifact corpus"), path, "scifact corpus", ["doc_id", "abstract"])
    by_id = {str(r["doc_id"]): [str(x).strip() for x in r["abstract"]] for r in rows}

    def source(passage: Passage) -> list[str]:
        return by_id.get(passage.id) or split_sentences(passage.text)

    return source


def verdict_scores(predicted: Sequence[Label], gold: Sequence[Label]) -> dict[str, Any]:
    """Label accuracy, per-label F1 and their macro average (over the three labels)."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} claims")
    f1: dict[str, float] = {}
    for label in LABELS:
        tp = sum(p == g == label for p, g in zip(predicted, gold))
        fp = sum(p == label != g for p, g in zip(predicted, gold))
        fn = sum(g == label != p for p, g in zip(predicted, gold))
        f1[label] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    n = len(gold)
    return {
        "claims": n,
        "accuracy": sum(p == g for p, g in zip(predicted, gold)) / n if n else 0.0,
        "macro_f1": sum(f1.values()) / len(f1),
        "f1": f1,
    }


__all__ = ["SCIFACT_LABELS", "LabelledClaim", "load_scifact", "scifact_sentences", "verdict_scores"]
