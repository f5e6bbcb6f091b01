"""Resumable evaluation runs: one JSONL file of per-question records per (dataset, method).

Layout of an output directory::

    OUT/<dataset>/<method>.jsonl      one QuestionRecord a line, appended, flushed and fsynced
    OUT/<dataset>/<method>.run.json   the run's fingerprint (config, model, prompt, corpus checksum)

A run killed at any point (even ``kill -9`` mid-line) and started again with the same command
resumes: a torn last line is cut off, questions already recorded are skipped, nothing is lost or
written twice. Starting a run whose fingerprint differs from the one on disk (another config,
model, prompt or corpus) is refused with the differences listed; execution settings that do not
change answers (device, threads, batch size) may change between runs, and so may ``--limit``.

Example (small, with the real default model)::

    from pathlib import Path
    from gatedrag.evals.runner import evaluate
    evaluate("hotpotqa", ["no-rag", "gated"], out=Path("runs/demo"), limit=5)
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError, GatedRAGError
from gatedrag.gate.select import ScoredCandidate
from gatedrag.records import JsonlWriter, RunLock, fingerprint_file, read_jsonl
from gatedrag.signals.registry import needs_of, rungs_of
from gatedrag.types import Answer, Counts, Passage, Step

from .baselines import METHODS, method_config
from .datasets import DEFAULT_DATA_DIR, Example, Metric, corpus_path, dataset_spec, load_dataset
from .metrics import score

RECORD_VERSION = 1
_EXECUTION_ONLY = {("model", "device"), ("model", "threads"), ("decoding", "batch_size")}


class QuestionRecord(BaseModel):
    """Everything measured on one question by one method."""

    version: int = RECORD_VERSION
    id: str
    dataset: str
    method: str
    question: str
    answers: list[str]
    metric: Metric = "qa"
    prediction: str
    text: str = ""
    em: float
    f1: float
    confidence: float = 0.0
    """Confidence shown to users (geometric-mean probability of the answer tokens), in [0, 1]."""
    counts: Counts = Field(default_factory=Counts)
    seconds: float = 0.0
    """Amortised wall time: the batch's wall-clock seconds divided by its questions (throughput);
    ``counts.wall_time_s`` is this question's latency within its batch."""
    batch_size: int = 1
    finish_reason: str = ""
    degraded: bool = False
    error: str | None = None
    signals: dict[str, list[float]] = Field(default_factory=dict)
    """Every signal's value on every sentence the model wrote (rejected ones included), in order."""
    steps: list[Step] = Field(default_factory=list)
    candidates: list[ScoredCandidate] = Field(default_factory=list)
    """With answer selection (``policy.select``): every candidate answer with its features and score."""
    scorer: str | None = None

    @property
    def correct(self) -> bool:
        return self.em >= 1.0


def record_from_answer(example: Example, method: str, answer: Answer) -> QuestionRecord:
    signals: dict[str, list[float]] = {}
    for step in answer.steps:
        if step.kind in ("sentence", "question"):
            for v in step.signals:
                if v.note is None:
                    signals.setdefault(v.name, []).append(v.value)
    metrics = score(answer.answer, example.answers, example.metric)
    return QuestionRecord(
        id=example.id,
        dataset=example.dataset,
        method=method,
        question=example.question,
        answers=example.answers,
        metric=example.metric,
        prediction=answer.answer,
        text=answer.text,
        em=metrics["em"],
        f1=metrics["f1"],
        confidence=answer.confidence,
        counts=answer.counts,
        finish_reason=answer.finish_reason,
        degraded=answer.degraded,
        signals=signals,
        steps=answer.steps,
        candidates=answer.selection.candidates if answer.selection else [],
        scorer=answer.selection.scorer if answer.selection else None,
    )


def failed_record(example: Example, method: str, err: Exception) -> QuestionRecord:
    return QuestionRecord(
        id=example.id,
        dataset=example.dataset,
        method=method,
        question=example.question,
        answers=example.answers,
        metric=example.metric,
        prediction="",
        em=0.0,
        f1=0.0,
        error=f"{type(err).__name__}: {err}",
        degraded=True,
    )


# -- the record file --------------------------------------------------------------------------
def read_records(path: Path, *, repair: bool = False) -> list[QuestionRecord]:
    """The question records of a JSONL file (:func:`gatedrag.records.read_jsonl`: a torn tail is
    ignored, and cut off with ``repair``; a damaged complete line is an error)."""
    return read_jsonl(path, QuestionRecord, repair=repair)


RecordWriter = JsonlWriter
"""Appends records durably: each line is flushed and fsynced before the next question."""


# -- fingerprints -----------------------------------------------------------------------------
def fingerprint(config: PipelineConfig, *, dataset: str, method: str, corpus_sha256: str, model: str) -> dict[str, Any]:
    """What determines a run's answers (execution-only settings removed; the prompt by content;
    for transformers the dtype the weights are computed in, ``auto`` resolved for this machine)."""
    from gatedrag.prompts import PromptTemplate

    data = config.model_dump(mode="json")
    prompt_json = PromptTemplate.load(config.prompt).model_dump_json().encode()
    data["prompt_sha256"] = hashlib.sha256(prompt_json).hexdigest()
    for section, key in _EXECUTION_ONLY:
        data[section].pop(key, None)
    if data["model"].get("backend") == "hf":  # dtype auto means bf16 or float32 by machine: record which
        from gatedrag.lm.hf import resolve_dtype

        data["model"]["dtype"] = resolve_dtype(config.model)
    if data["model"].get("backend") != "llamacpp":
        data["model"].pop("llamacpp", None)  # only that backend reads its settings
    else:
        for key in ("cells", "sequences"):  # how much is cached, not what is written
            data["model"]["llamacpp"].pop(key, None)
    data["retrieval"].pop("index_dir", None)
    backend = data["retrieval"].get("backend")
    if backend not in ("dense", "hybrid"):
        data["retrieval"].pop("dense", None)  # only these backends read them
    else:
        for key in ("index_dir", "batch_size", "threads"):  # where and how fast, not what is found
            data["retrieval"]["dense"].pop(key, None)
    if backend != "hybrid":
        data["retrieval"].pop("fusion", None)
    data["retrieval"]["corpus_sha256"] = corpus_sha256
    data["retrieval"].pop("corpus", None)
    select = data["policy"].get("select") or {}
    if select.get("combiner"):  # the combiner by content, not by where it lies
        path = Path(select.pop("combiner"))
        select["combiner_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    draft_rules = (data.get("draft") or {}).get("rules", [])
    signals = [r["signal"] for r in [*data["gate"]["rules"], *draft_rules]]
    if "corpus" in needs_of(signals):
        for key in ("timeout_s", "retries", "cache_size"):
            data["corpus_stats"].pop(key, None)
    else:  # corpus statistics are not read: their settings cannot change the answers
        data.pop("corpus_stats", None)
    if data["policy"]["control_mode"] == "gate" and "adjust" not in rungs_of(
        r["signal"] for r in data["gate"]["rules"]
    ):
        data.pop("control", None)  # no adjust rung: the control settings are never used
    return {"dataset": dataset, "method": method, "model": model, "config": data, "record_version": RECORD_VERSION}


def check_fingerprint(run_file: Path, current: dict[str, Any]) -> None:
    """Write the fingerprint on first use; refuse a different one later. A setting that did not
    exist when the fingerprint was written is accepted at its default (a setting is added with the
    default that keeps the earlier behaviour)."""
    defaults = {"config": PipelineConfig().model_dump(mode="json")}
    changes = fingerprint_file(run_file, current, added_defaults=defaults)
    if changes:
        shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
        raise ConfigError(
            f"{run_file.parent} already holds results of {current['method']} made with another setup ({shown}). "
            "Use a new --out directory, or delete the old results to start over."
        )


# -- running ----------------------------------------------------------------------------------
ProgressCallback = Callable[[str, QuestionRecord, int, int], None]
"""Called as ``(method, record, done, total)`` after each recorded question."""


def run_method(
    rag: Any,
    examples: Sequence[Example],
    out_file: Path,
    *,
    method: str,
    on_record: ProgressCallback | None = None,
    given: Callable[[Example], list[Passage]] | None = None,
) -> list[QuestionRecord]:
    """Answer the examples not yet in ``out_file`` with ``rag`` (a GatedRAG), in batches of
    ``rag.config.decoding.batch_size``, appending one record per question. Returns all records of
    these examples, old and new, in example order. ``given(example)``: passages to give with each
    question (the gold method)."""
    existing = {r.id: r for r in read_records(out_file, repair=True)}
    todo = [e for e in examples if e.id not in existing]
    total = len(examples)
    done = total - len(todo)
    size = rag.config.decoding.batch_size
    with RecordWriter(out_file) as writer:
        for lo in range(0, len(todo), size):
            chunk = todo[lo : lo + size]
            t0 = time.perf_counter()
            context = [given(e) for e in chunk] if given is not None else None
            try:
                answers: list[Answer | Exception] = list(rag.batch([e.question for e in chunk], passages=context))
            except GatedRAGError:  # one bad question (e.g. too long): answer the batch one by one
                answers = []
                for i, e in enumerate(chunk):
                    try:
                        answers.append(rag.ask(e.question, passages=context[i] if context else None))
                    except GatedRAGError as err:
                        answers.append(err)
            seconds = round((time.perf_counter() - t0) / len(chunk), 3)
            for example, answer in zip(chunk, answers):
                if isinstance(answer, Exception):
                    record = failed_record(example, method, answer)
                else:
                    record = record_from_answer(example, method, answer)
                record.seconds, record.batch_size = seconds, len(chunk)
                writer.write(record)
                existing[record.id] = record
                done += 1
                if on_record is not None:
                    on_record(method, record, done, total)
    return [existing[e.id] for e in examples if e.id in existing]


class RunSummary(BaseModel):
    dataset: str
    method: str
    questions: int
    em: float
    f1: float
    retrievals_per_q: float
    llm_calls_per_q: float
    seconds_per_q: float = 0.0
    wall_s: float


def evaluate(
    dataset: str,
    methods: Sequence[str],
    *,
    out: Path,
    limit: int | None = None,
    data_dir: Path = DEFAULT_DATA_DIR,
    base: PipelineConfig | None = None,
    custom: dict[str, PipelineConfig] | None = None,
    on_record: ProgressCallback | None = None,
    on_method: Callable[[str, int, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RunSummary]:
    """Run the named baselines (:data:`~gatedrag.evals.baselines.METHODS`) on the first ``limit``
    questions of ``dataset`` with one model and one retriever, each resuming from what ``out`` holds.

    ``custom``: more methods, ``{name: config}``, each run as the ``gated`` method is (its own gate,
    the dataset's few-shot prompt when it uses the default one); they must use the same model.
    ``on_method(method, already_done, total)`` is called before a method starts.
    """
    base = base or PipelineConfig()
    spec = dataset_spec(dataset)
    configs = {m: method_config(m, spec.name, base) for m in methods}
    for name, cfg in (custom or {}).items():
        if name in configs:
            raise ConfigError(f"method name {name!r} is used twice")
        configs[name] = method_config("gated", spec.name, cfg)
    return evaluate_configs(
        spec.name,
        configs,
        out=out,
        limit=limit,
        data_dir=data_dir,
        on_record=on_record,
        on_method=on_method,
        progress=progress,
        gold_context={m for m in methods if METHODS[m].context == "gold"},
    )


def evaluate_configs(
    dataset: str,
    configs: dict[str, PipelineConfig],
    *,
    out: Path,
    limit: int | None = None,
    offset: int = 0,
    data_dir: Path = DEFAULT_DATA_DIR,
    on_record: ProgressCallback | None = None,
    on_method: Callable[[str, int, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
    records_out: dict[str, list[QuestionRecord]] | None = None,
    gold_context: set[str] | frozenset[str] = frozenset(),
) -> list[RunSummary]:
    """Like :func:`evaluate` for arbitrary named configs (they must share the model); questions
    ``offset .. offset + limit`` of the file. Each config's retrieval corpus is set to the dataset's.
    ``records_out``, if given, receives each config's records of these questions. The configs named
    in ``gold_context`` are given each question's supporting passages (:mod:`.gold`)."""
    from gatedrag.factory import build_components, build_rag, resolve_backend, with_backend
    from gatedrag.prompts import PromptTemplate
    from gatedrag.retrieval.corpus import corpus_sha256

    if not configs:
        raise ConfigError("nothing to evaluate: give at least one method")
    models = {c.model.model_dump_json() for c in configs.values()}
    if len(models) > 1:
        raise ConfigError("the compared configs must use the same model settings")
    spec = dataset_spec(dataset)
    corpus = corpus_path(spec.name, data_dir)
    configs = {
        m: c.model_copy(update={"retrieval": c.retrieval.model_copy(update={"corpus": corpus})})
        for m, c in configs.items()
    }
    skip = set().union(*(PromptTemplate.load(c.prompt).source_ids for c in configs.values()))
    examples = load_dataset(spec.name, data_dir, limit=None if limit is None else offset + limit, skip=skip)[offset:]
    sha = corpus_sha256(corpus)
    dest = out / spec.name
    first, *rest = configs.values()
    choice = resolve_backend(first, also=rest)  # "auto" resolved: the records say which backend wrote them
    if progress is not None:
        progress(f"backend {choice.backend}: {choice.reason}")
    configs = {m: with_backend(c, choice) for m, c in configs.items()}
    for m, cfg in configs.items():  # refuse a changed setup before spending any time
        current = fingerprint(cfg, dataset=spec.name, method=m, corpus_sha256=sha, model=cfg.model.name)
        if m in gold_context:
            current["context"] = "gold"
        check_fingerprint(dest / f"{m}.run.json", current)
    with contextlib.ExitStack() as locks:  # a second process on the same records is refused, before the model loads
        for m in configs:
            locks.enter_context(RunLock(dest / f"{m}.jsonl"))
        first = next(iter(configs.values()))
        parts = build_components(first, also=list(configs.values()), progress=progress)
        summaries = []
        for m, cfg in configs.items():
            out_file = dest / f"{m}.jsonl"
            if on_method is not None:
                have = {r.id for r in read_records(out_file)}
                on_method(m, sum(1 for e in examples if e.id in have), len(examples))
            rag = build_rag(cfg, parts)
            t0 = time.perf_counter()
            given = None
            if m in gold_context:
                from gatedrag.retrieval.corpus import load_corpus

                from .gold import GoldPassages

                given = GoldPassages(load_corpus(corpus)).passages_of
            records = run_method(rag, examples, out_file, method=m, on_record=on_record, given=given)
            if records_out is not None:
                records_out[m] = records
            n = max(1, len(records))
            summaries.append(
                RunSummary(
                    dataset=spec.name,
                    method=m,
                    questions=len(records),
                    em=sum(r.em for r in records) / n,
                    f1=sum(r.f1 for r in records) / n,
                    retrievals_per_q=sum(r.counts.retrievals for r in records) / n,
                    llm_calls_per_q=sum(r.counts.llm_calls for r in records) / n,
                    seconds_per_q=sum(r.seconds for r in records) / n,
                    wall_s=round(time.perf_counter() - t0, 1),
                )
            )
        return summaries


__all__ = [
    "QuestionRecord",
    "RecordWriter",
    "RunSummary",
    "check_fingerprint",
    "evaluate",
    "evaluate_configs",
    "fingerprint",
    "read_records",
    "record_from_answer",
    "run_method",
]
