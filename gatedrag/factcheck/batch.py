"""Checking a file of claims: one JSONL record per claim in ``OUT/verdicts.jsonl`` (its id, label,
confidence, evidence, route and counts, and the input record's other fields), decoded
``batch_size`` claims at a time, appended durably (:mod:`gatedrag.records`): killed at any moment
(even ``kill -9``), a rerun with the same command loses and duplicates nothing. ``OUT/run.json``
holds what the records were made with; a rerun with another checker configuration or model is
refused rather than mixed in.

Example (with any checker)::

    from gatedrag.factcheck.batch import check_claims
    from gatedrag.factcheck.claims import read_claims
    records = check_claims(checker, read_claims("claims.jsonl"), Path("out"))
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.errors import ConfigError, GatedRAGError
from gatedrag.factcheck.certainty import Label
from gatedrag.factcheck.checker import FactChecker
from gatedrag.factcheck.claims import Claim
from gatedrag.factcheck.events import Verdict
from gatedrag.factcheck.routing import Route
from gatedrag.records import JsonlWriter, read_jsonl

RECORDS = "verdicts.jsonl"
RUN = "run.json"


class EvidenceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    sentences: list[int] = Field(default_factory=list)


class ClaimRecord(BaseModel):
    """One checked claim as written to the output file."""

    model_config = ConfigDict(extra="forbid")
    id: str
    claim: str
    label: Label | None
    """``None``: the check failed (``error`` says why)."""
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    route: Route | None = None
    searches: int = 0
    evidence: list[EvidenceRecord] = Field(default_factory=list)
    rationale: str = ""
    degraded: bool = False
    error: str | None = None
    seconds: float = 0.0
    """Wall time of the claim's batch divided by its claims."""
    fields: dict[str, Any] = Field(default_factory=dict)
    """The input record's other fields, as given."""

    @classmethod
    def of(cls, claim: Claim, verdict: Verdict | Exception, seconds: float) -> ClaimRecord:
        if isinstance(verdict, Exception):
            return cls(
                id=claim.id,
                claim=claim.claim,
                label=None,
                error=f"{type(verdict).__name__}: {verdict}",
                degraded=True,
                seconds=seconds,
                fields=claim.fields,
            )
        return cls(
            id=claim.id,
            claim=claim.claim,
            label=verdict.label,
            confidence=verdict.confidence,
            route=verdict.route,
            searches=verdict.searches,
            evidence=[
                EvidenceRecord(id=e.passage.id, title=e.passage.title, sentences=e.sentences) for e in verdict.evidence
            ],
            rationale=verdict.rationale,
            degraded=verdict.degraded,
            seconds=seconds,
            fields=claim.fields,
        )


def run_fingerprint(checker: FactChecker, corpus: str | None) -> dict[str, Any]:
    """What a batch's records depend on: the checker's configuration, the model, the corpus."""
    return {
        "config": checker.config.model_dump(mode="json"),
        "model": checker.lm.name,
        "corpus": corpus,
        "calibrated": checker.calibration is not None,
    }


def check_claims(
    checker: FactChecker,
    claims: Sequence[Claim],
    out: Path,
    *,
    corpus: str | None = None,
    on_record: Callable[[ClaimRecord, int, int], None] | None = None,
) -> list[ClaimRecord]:
    """Check the claims not yet recorded in ``out`` (see the module doc); every claim's record, old
    and new, in the order given. ``on_record(record, done, total)`` after each new one."""
    out.mkdir(parents=True, exist_ok=True)
    run_file, path = out / RUN, out / RECORDS
    current = run_fingerprint(checker, corpus)
    if run_file.is_file():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except ValueError:
            raise ConfigError(f"{run_file} is damaged: move {out} away to start over") from None
        if previous != current:
            changed = sorted(k for k in current if previous.get(k) != current[k])
            raise ConfigError(
                f"{out} holds verdicts made with another {', '.join(changed)}: use another --out, or move it away"
            )
    else:
        run_file.write_text(json.dumps(current, indent=1), encoding="utf-8")
    existing = {r.id: r for r in read_jsonl(path, ClaimRecord, repair=True)}
    todo = [c for c in claims if c.id not in existing]
    done, total = len(claims) - len(todo), len(claims)
    size = checker.config.batch_size
    with JsonlWriter(path) as writer:
        for lo in range(0, len(todo), size):
            chunk = todo[lo : lo + size]
            t0 = time.perf_counter()
            try:
                verdicts: list[Verdict | Exception] = list(checker.batch([c.claim for c in chunk]))
            except GatedRAGError:  # one claim the checker refuses: check the batch one by one
                verdicts = []
                for c in chunk:
                    try:
                        verdicts.append(checker.check(c.claim))
                    except GatedRAGError as err:
                        verdicts.append(err)
            seconds = round((time.perf_counter() - t0) / len(chunk), 3)
            for claim, verdict in zip(chunk, verdicts):
                record = ClaimRecord.of(claim, verdict, seconds)
                writer.write(record)
                existing[record.id] = record
                done += 1
                if on_record is not None:
                    on_record(record, done, total)
    return [existing[c.id] for c in claims if c.id in existing]


__all__ = ["RECORDS", "RUN", "ClaimRecord", "EvidenceRecord", "check_claims", "run_fingerprint"]
