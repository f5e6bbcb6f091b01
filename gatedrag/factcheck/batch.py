"""Checking a file of claims: one JSONL record per claim in ``OUT/verdicts.jsonl`` (its id, label,
confidence, evidence, route and counts, and the input record's other fields), decoded
``batch_size`` claims at a time, appended durably (:mod:`gatedrag.records`): killed at any moment
(even ``kill -9``), a rerun with the same command loses and duplicates nothing; a second process
on the same ``OUT`` is refused (:class:`~gatedrag.records.RunLock`). ``OUT/run.json``
holds what the records were made with; a rerun with another checker configuration or model is
refused rather than mixed in.

Example (with any checker)::

    from gatedrag.factcheck.batch import check_claims
    from gatedrag.factcheck.claims import read_claims
    records = check_claims(checker, read_claims("claims.jsonl"), Path("out"))
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.errors import ConfigError, GatedRAGError
from gatedrag.factcheck.certainty import Label, VerdictCertainty
from gatedrag.factcheck.checker import FactCheckConfig, FactChecker
from gatedrag.factcheck.claims import Claim
from gatedrag.factcheck.events import ClaimAssessed, Judged, Verdict, VerdictGiven
from gatedrag.factcheck.routing import Route
from gatedrag.factcheck.verdict import BINARY, THREE_WAY
from gatedrag.records import JsonlWriter, RunLock, fingerprint_file, read_jsonl

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
    llm_calls: int = 0
    tau: float | None = None
    """The closed-book certainty τ the route was chosen by."""
    gamma: float | None = None
    """The rationales' consistency γ the route was chosen by."""
    corpus_fired: bool | None = None
    """Whether the claim's corpus signal fired (``None``: not configured)."""
    closed_masses: dict[str, float] = Field(default_factory=dict)
    """Each label's probability mass in the closed-book verdict (supported, refuted)."""
    evidence_masses: dict[str, float] = Field(default_factory=dict)
    """Each label's mass in the last verdict with evidence (empty: none was judged)."""
    features: dict[str, float] = Field(default_factory=dict)
    """The verdict's features (what a calibration is fitted on)."""
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
        assessed = next((e for e in verdict.events if isinstance(e, ClaimAssessed)), None)
        judged = next((e for e in reversed(verdict.events) if isinstance(e, Judged)), None)
        given = verdict.events[-1] if verdict.events else None
        return cls(
            id=claim.id,
            claim=claim.claim,
            label=verdict.label,
            confidence=verdict.confidence,
            route=verdict.route,
            searches=verdict.searches,
            llm_calls=verdict.llm_calls,
            tau=assessed.certainty.tau if assessed else None,
            gamma=assessed.consistency.gamma if assessed else None,
            corpus_fired=any(v.fired for v in assessed.corpus) if assessed and assessed.corpus else None,
            closed_masses=_masses(assessed.certainty, BINARY) if assessed else {},
            evidence_masses=_masses(judged.certainty, THREE_WAY) if judged else {},
            features=given.features if isinstance(given, VerdictGiven) else {},
            evidence=[
                EvidenceRecord(id=e.passage.id, title=e.passage.title, sentences=e.sentences) for e in verdict.evidence
            ],
            rationale=verdict.rationale,
            degraded=verdict.degraded,
            seconds=seconds,
            fields=claim.fields,
        )


def _masses(certainty: VerdictCertainty, labels: Sequence[Label]) -> dict[str, float]:
    return {label: certainty.mass(label) for label in labels}


def run_fingerprint(checker: FactChecker, corpus: str | None, config: FactCheckConfig | None = None) -> dict[str, Any]:
    """What a batch's records depend on: the checker's configuration (or ``config``), the model and
    the backend running it (its class: transformers and llama.cpp give different verdicts on the
    same weights), the corpus."""
    lm = type(checker.lm)
    return {
        "config": (config or checker.config).model_dump(mode="json"),
        "model": checker.lm.name,
        "backend": f"{lm.__module__}.{lm.__qualname__}",
        "corpus": corpus,
        "calibrated": checker.calibration is not None,
    }


def _open(out: Path, fingerprint: dict[str, Any]) -> dict[str, ClaimRecord]:
    """The records already in ``out`` (made with ``fingerprint``, else :class:`ConfigError`; a
    setting added since, at its default, is no change)."""
    defaults = {"config": FactCheckConfig().model_dump(mode="json"), "backend": None}
    changes = fingerprint_file(out / RUN, fingerprint, added_defaults=defaults)
    if changes:
        raise ConfigError(
            f"{out} holds verdicts made with another setup ({'; '.join(changes[:6])}): use another --out, "
            "or move it away"
        )
    return {r.id: r for r in read_jsonl(out / RECORDS, ClaimRecord, repair=True)}


def _checked(check: Callable[[list[str]], list[Any]], chunk: Sequence[Claim]) -> list[Any]:
    """``check`` of a chunk of claims; when the checker refuses one, each claim alone (its error kept)."""
    try:
        return check([c.claim for c in chunk])
    except GatedRAGError:
        out: list[Any] = []
        for c in chunk:
            try:
                out.append(check([c.claim])[0])
            except GatedRAGError as err:
                out.append(err)
        return out


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
    existing = _open(out, run_fingerprint(checker, corpus))
    todo = [c for c in claims if c.id not in existing]
    done, total = len(claims) - len(todo), len(claims)
    size = checker.config.batch_size
    with RunLock(out), JsonlWriter(out / RECORDS) as writer:
        for lo in range(0, len(todo), size):
            chunk = todo[lo : lo + size]
            t0 = time.perf_counter()
            verdicts = _checked(checker.batch, chunk)
            seconds = round((time.perf_counter() - t0) / len(chunk), 3)
            for claim, verdict in zip(chunk, verdicts):
                record = ClaimRecord.of(claim, verdict, seconds)
                writer.write(record)
                existing[record.id] = record
                done += 1
                if on_record is not None:
                    on_record(record, done, total)
    return [existing[c.id] for c in claims if c.id in existing]


def sweep_claims(
    checker: FactChecker,
    claims: Sequence[Claim],
    variants: Mapping[str, FactCheckConfig],
    out: Path,
    *,
    corpus: str | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, list[ClaimRecord]]:
    """Check the claims once per variant (:meth:`FactChecker.sweep`: one shared assessment), each
    variant's records in ``out/NAME/`` with :func:`check_claims`'s guarantees: a claim missing from
    any variant's file is checked again and written only where it is missing. ``seconds`` is the
    batch's wall time per claim, shared assessment included, so the variants' times add up to more
    than the sweep took. ``on_batch(done, total)`` after each batch."""
    existing = {name: _open(out / name, run_fingerprint(checker, corpus, v)) for name, v in variants.items()}
    todo = [c for c in claims if any(c.id not in have for have in existing.values())]
    size = checker.config.batch_size
    with contextlib.ExitStack() as stack:
        for name in variants:
            stack.enter_context(RunLock(out / name))
        writers = {name: stack.enter_context(JsonlWriter(out / name / RECORDS)) for name in variants}
        for lo in range(0, len(todo), size):
            chunk = todo[lo : lo + size]
            t0 = time.perf_counter()
            swept = _checked(lambda texts: _transpose(checker.sweep(texts, variants), len(texts)), chunk)
            seconds = round((time.perf_counter() - t0) / len(chunk), 3)
            for claim, per_variant in zip(chunk, swept):
                for name in variants:
                    if claim.id in existing[name]:
                        continue
                    verdict = per_variant if isinstance(per_variant, Exception) else per_variant[name]
                    record = ClaimRecord.of(claim, verdict, seconds)
                    writers[name].write(record)
                    existing[name][claim.id] = record
            if on_batch is not None:
                on_batch(len(claims) - len(todo) + lo + len(chunk), len(claims))
    return {name: [have[c.id] for c in claims if c.id in have] for name, have in existing.items()}


def _transpose(swept: Mapping[str, list[Verdict]], n: int) -> list[dict[str, Verdict]]:
    return [{name: verdicts[i] for name, verdicts in swept.items()} for i in range(n)]


__all__ = ["RECORDS", "RUN", "ClaimRecord", "EvidenceRecord", "check_claims", "run_fingerprint", "sweep_claims"]
