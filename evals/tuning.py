"""Threshold sweeps: run one gate signal at several thresholds on a dev split, pick one, write it.

Each threshold is a named config run through the resumable runner (``OUT/<dataset>/tune-<signal>-
<value>.jsonl``), so an interrupted sweep resumes. The chosen threshold is the one with the highest
EM (ties: fewer retrievals per question), optionally among those within a retrieval budget; the
sweep table (EM, F1, retrievals and LLM calls per question) is written beside the chosen config so
users can pick their own cost/accuracy point.

:func:`tune_draft` tunes the judge of a closed-book draft (``PipelineConfig.draft``) from two runs
instead of one per threshold: the closed-book answers with the judge's signal traced, and the
answers written with passages from the start. A draft is kept exactly when no sentence of the
closed-book answer crosses the threshold, and an abandoned draft is followed by what the second
run wrote, so every threshold is replayed from the two sets of records.

The dev split defaults to the questions *after* the first 100 of the file, which the evaluation
uses, so tuning never sees the test questions.

Example::

    from pathlib import Path
    from gatedrag.evals.tuning import tune
    result = tune("hotpotqa", "token_rag", [0.05, 0.1, 0.2], out=Path("runs/tune"), limit=30)
    print(result.chosen, result.config_path)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from gatedrag.config import RULES, DraftConfig, PipelineConfig
from gatedrag.errors import ConfigError

from .baselines import PROMPTS
from .datasets import DEFAULT_DATA_DIR, dataset_spec
from .metrics import score
from .runner import ProgressCallback, QuestionRecord, RunSummary, evaluate_configs, fingerprint


def with_threshold(base: PipelineConfig, signal: str, value: float) -> PipelineConfig:
    """``base`` with ``signal`` acting at ``value`` (added to the gate if absent); other rules as they were."""
    if signal not in RULES:
        raise ConfigError(f"cannot tune {signal!r}; tunable signals: {', '.join(RULES)}")
    data = base.model_dump(mode="json")
    rules: list[dict[str, Any]] = data["gate"]["rules"]
    rule = next((r for r in rules if r["signal"] == signal), None)
    if rule is None:
        rule = {"signal": signal}
        rules.append(rule)
    rule[RULES[signal].threshold_param] = value
    rule["act"] = True
    try:
        return PipelineConfig.model_validate(data)
    except ValueError as err:
        raise ConfigError(f"threshold {value} is not valid for {signal}: {err}") from None


class SweepRow(BaseModel):
    value: float
    summary: RunSummary


class TuneResult(BaseModel):
    dataset: str
    signal: str
    rows: list[SweepRow]
    chosen: float
    config_path: Path
    table_path: Path


def choose(rows: Sequence[SweepRow], max_retrievals: float | None = None) -> SweepRow:
    """Highest EM (then F1, then fewer retrievals) among rows within the retrieval budget."""
    within = [r for r in rows if max_retrievals is None or r.summary.retrievals_per_q <= max_retrievals]
    if not within:
        raise ConfigError(f"no threshold keeps retrievals per question <= {max_retrievals}; widen the sweep")
    return max(within, key=lambda r: (r.summary.em, r.summary.f1, -r.summary.retrievals_per_q))


def _table(rows: Sequence[SweepRow], signal: str, chosen: float) -> str:
    lines = [
        f"| {signal} threshold | EM | F1 | retrievals/q | LLM calls/q | s/q |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r.summary
        mark = " **(chosen)**" if r.value == chosen else ""
        lines.append(
            f"| {r.value:g}{mark} | {s.em:.3f} | {s.f1:.3f} | {s.retrievals_per_q:.2f} | "
            f"{s.llm_calls_per_q:.2f} | {s.seconds_per_q:.1f} |"
        )
    return "\n".join(lines)


def _with_dataset_prompt(base: PipelineConfig, dataset: str) -> tuple[PipelineConfig, bool]:
    """``base`` with the dataset's few-shot prompt unless it names its own template (then ``True``:
    that template is written into the chosen config)."""
    if base.prompt != "cot":
        return base, True
    return base.model_copy(update={"prompt": PROMPTS.get(dataset, "cot")}), False


def tune(
    dataset: str,
    signal: str,
    values: Sequence[float],
    *,
    out: Path,
    limit: int = 50,
    offset: int = 100,
    data_dir: Path = DEFAULT_DATA_DIR,
    base: PipelineConfig | None = None,
    max_retrievals: float | None = None,
    on_record: ProgressCallback | None = None,
    on_method: Callable[[str, int, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TuneResult:
    """Sweep ``signal``'s threshold over ``values`` on questions ``offset .. offset + limit``."""
    if not values:
        raise ConfigError("give at least one threshold value to sweep")
    spec = dataset_spec(dataset)
    base, own_prompt = _with_dataset_prompt(base or PipelineConfig(), spec.name)
    values = sorted(set(values))
    configs = {f"tune-{signal}-{v:g}": with_threshold(base, signal, v) for v in values}
    summaries = evaluate_configs(
        spec.name,
        configs,
        out=out,
        limit=limit,
        offset=offset,
        data_dir=data_dir,
        on_record=on_record,
        on_method=on_method,
        progress=progress,
    )
    rows = [SweepRow(value=v, summary=s) for v, s in zip(values, summaries)]
    best = choose(rows, max_retrievals)
    table = _table(rows, signal, best.value)
    n = rows[0].summary.questions
    header = (
        f"Threshold sweep of {signal} on {spec.name}, questions {offset}..{offset + n - 1} of the file "
        f"(model {base.model.name})."
    )
    table_path = out / f"tune_{spec.name}_{signal}.md"
    table_path.write_text(f"# {header}\n\n{table}\n", encoding="utf-8")
    chosen_cfg = configs[f"tune-{signal}-{best.value:g}"]
    data = chosen_cfg.model_dump(mode="json", include={"model", "gate", "policy", "decoding"})
    data["model"] = {"name": chosen_cfg.model.name}
    if own_prompt:
        data["prompt"] = chosen_cfg.prompt
    comment = "\n".join(f"# {line}" for line in [header, *table.splitlines()])
    config_path = out / f"tuned_{spec.name}_{signal}.yaml"
    config_path.write_text(comment + "\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return TuneResult(
        dataset=spec.name, signal=signal, rows=rows, chosen=best.value, config_path=config_path, table_path=table_path
    )


def replayable_signals() -> list[str]:
    """Registered signals whose firing on a sentence is ``value > threshold``, so that a draft
    judge's threshold can be replayed from records (:attr:`~gatedrag.config.RuleBase.replayable`)."""
    return [name for name, rule in RULES.items() if rule.replayable]


def fired_threshold(signal: str, value: float) -> float:
    """The traced threshold a signal's value is compared with at rule setting ``value`` (FLARE's
    rule reads a token probability ``theta``; its value is ``1 - min p``, compared with ``1 - theta``)."""
    return RULES[signal].fired_threshold(value)


class DraftRow(BaseModel):
    value: float
    questions: int
    kept: float
    """Share of drafts kept (answered closed-book, without retrieval)."""
    em: float
    f1: float
    acc: float
    retrievals_per_q: float


class DraftTuneResult(BaseModel):
    dataset: str
    signal: str
    rows: list[DraftRow]
    chosen: float
    closed_book: RunSummary
    with_passages: RunSummary
    config_path: Path
    table_path: Path


def replay_draft(
    signal: str, value: float, closed: Sequence[QuestionRecord], full: Sequence[QuestionRecord]
) -> DraftRow:
    """What a draft judged by ``signal`` at ``value`` would have answered, from the closed-book
    records (with ``signal`` traced on every sentence) and the retrieve-first records."""
    by_id = {r.id: r for r in full}
    pairs = [(c, by_id[c.id]) for c in closed if c.id in by_id]
    if not pairs:
        raise ConfigError("the closed-book and with-passages runs share no question")
    limit = fired_threshold(signal, value)
    kept = em = f1 = acc = retrievals = 0.0
    for c, f in pairs:
        values = c.signals.get(signal)
        if values is None:
            raise ConfigError(f"the closed-book records do not trace {signal!r}; run them with it in draft.rules")
        chosen = c if max(values, default=0.0) <= limit else f
        kept += chosen is c
        metrics = score(chosen.prediction, chosen.answers, chosen.metric)
        em, f1, acc = em + metrics["em"], f1 + metrics["f1"], acc + metrics["acc"]
        retrievals += chosen.counts.retrievals
    n = len(pairs)
    return DraftRow(
        value=value, questions=n, kept=kept / n, em=em / n, f1=f1 / n, acc=acc / n, retrievals_per_q=retrievals / n
    )


def _draft_table(rows: Sequence[DraftRow], signal: str, chosen: float) -> str:
    lines = [
        f"| draft {signal} threshold | drafts kept | EM | F1 | Acc | retrievals/q |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mark = " **(chosen)**" if r.value == chosen else ""
        lines.append(
            f"| {r.value:g}{mark} | {r.kept:.0%} | {r.em:.3f} | {r.f1:.3f} | {r.acc:.3f} | {r.retrievals_per_q:.2f} |"
        )
    return "\n".join(lines)


def tune_draft(
    dataset: str,
    signal: str,
    values: Sequence[float],
    *,
    out: Path,
    limit: int = 50,
    offset: int = 100,
    data_dir: Path = DEFAULT_DATA_DIR,
    base: PipelineConfig | None = None,
    max_retrievals: float | None = None,
    on_record: ProgressCallback | None = None,
    on_method: Callable[[str, int, int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DraftTuneResult:
    """Tune the draft judge ``signal`` over ``values`` on questions ``offset .. offset + limit``
    from two runs (see the module doc); ``base`` is the gate that answers an abandoned draft.

    The chosen value has the highest EM (then F1, then fewer retrievals) within ``max_retrievals``
    per question; the written config is ``base`` with ``draft.rules`` set to the chosen judge.
    """
    if signal not in replayable_signals():
        raise ConfigError(
            f"cannot tune a draft judged by {signal!r}; replayable signals: {', '.join(replayable_signals())}"
        )
    if not values:
        raise ConfigError("give at least one threshold value to sweep")
    spec = dataset_spec(dataset)
    base, own_prompt = _with_dataset_prompt(base or PipelineConfig(), spec.name)
    values = sorted(set(values))
    draft = base.draft or DraftConfig()
    own = next((r.model_dump(mode="json") for r in draft.rules if r.signal == signal), {"signal": signal})
    judges = {
        v: draft.model_dump(mode="json") | {"rules": [own | {RULES[signal].threshold_param: v, "act": True}]}
        for v in values
    }
    data = base.model_dump(mode="json")
    data["draft"] = None
    data["policy"]["retrieve_first"] = True
    if base.policy.paper.accept_after_retrieval == "rest":  # the rewrite after a draft is not gated
        for rule in data["gate"]["rules"]:
            rule["act"] = False
    full_cfg = PipelineConfig.model_validate(data)  # what an abandoned draft turns into
    # The closed-book run: the base gate with every rule traced only (the judge's rule in place of
    # the gate's own for that signal) and no retrieval. It depends only on the model, prompt, gate
    # and how the answer is cut, so bases that differ in their retrieval settings share it.
    judge_rule = judges[values[0]]["rules"][0] | {"act": False}
    rules = [r for r in base.model_dump(mode="json")["gate"]["rules"] if r["signal"] != signal] + [judge_rule]
    closed_cfg = PipelineConfig.model_validate(
        {
            "model": base.model.model_dump(mode="json"),
            "prompt": base.prompt,
            "gate": {"rules": [r | {"act": False} for r in rules]},
            "decoding": base.decoding.model_dump(mode="json"),
            "policy": {"max_retrievals": 0},
        }
    )

    def digest(cfg: PipelineConfig) -> str:
        what = fingerprint(cfg, dataset=spec.name, method="", corpus_sha256="", model=cfg.model.name)
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:8]

    names = {
        "closed": f"tune-draft-closed-book-{digest(closed_cfg)}",
        "full": f"tune-draft-with-passages-{digest(full_cfg)}",
    }
    records: dict[str, list[QuestionRecord]] = {}
    closed_summary, full_summary = evaluate_configs(
        spec.name,
        {names["closed"]: closed_cfg, names["full"]: full_cfg},
        out=out,
        limit=limit,
        offset=offset,
        data_dir=data_dir,
        on_record=on_record,
        on_method=on_method,
        progress=progress,
        records_out=records,
    )
    rows = [replay_draft(signal, v, records[names["closed"]], records[names["full"]]) for v in values]
    within = [r for r in rows if max_retrievals is None or r.retrievals_per_q <= max_retrievals]
    if not within:
        raise ConfigError(f"no threshold keeps retrievals per question <= {max_retrievals}; widen the sweep")
    best = max(within, key=lambda r: (r.em, r.f1, -r.retrievals_per_q))
    table = _draft_table(rows, signal, best.value)
    n = rows[0].questions
    header = (
        f"Draft judge {signal} on {spec.name}, questions {offset}..{offset + n - 1} of the file (model "
        f"{base.model.name}); without a draft: closed-book EM {closed_summary.em:.3f}, with passages from the "
        f"start EM {full_summary.em:.3f} at {full_summary.retrievals_per_q:.2f} retrievals/q."
    )
    table_path = out / f"tune_draft_{spec.name}_{signal}.md"
    table_path.write_text(f"# {header}\n\n{table}\n", encoding="utf-8")
    chosen = base.model_dump(mode="json", include={"model", "retrieval", "gate", "policy", "decoding"})
    chosen["model"] = {"name": base.model.name}
    chosen["retrieval"].pop("corpus", None)
    chosen["retrieval"].pop("index_dir", None)
    chosen["draft"] = judges[best.value]
    if own_prompt:
        chosen["prompt"] = base.prompt
    PipelineConfig.model_validate(chosen)  # the written config loads
    comment = "\n".join(f"# {line}" for line in [header, *table.splitlines()])
    config_path = out / f"tuned_draft_{spec.name}_{signal}.yaml"
    config_path.write_text(comment + "\n" + yaml.safe_dump(chosen, sort_keys=False), encoding="utf-8")
    return DraftTuneResult(
        dataset=spec.name,
        signal=signal,
        rows=rows,
        chosen=best.value,
        closed_book=closed_summary,
        with_passages=full_summary,
        config_path=config_path,
        table_path=table_path,
    )


__all__ = [
    "DraftRow",
    "DraftTuneResult",
    "SweepRow",
    "TuneResult",
    "choose",
    "fired_threshold",
    "replay_draft",
    "replayable_signals",
    "tune",
    "tune_draft",
    "with_threshold",
]
