"""Threshold sweeps: run one gate signal at several thresholds on a dev split, pick one, write it.

Each threshold is a named config run through the resumable runner (``OUT/<dataset>/tune-<signal>-
<value>.jsonl``), so an interrupted sweep resumes. The chosen threshold is the one with the highest
EM (ties: fewer retrievals per question), optionally among those within a retrieval budget; the
sweep table (EM, F1, retrievals and LLM calls per question) is written beside the chosen config so
users can pick their own cost/accuracy point.

The dev split defaults to the questions *after* the first 100 of the file, which the evaluation
uses, so tuning never sees the test questions.

Example::

    from pathlib import Path
    from gatedrag.evals.tuning import tune
    result = tune("hotpotqa", "token_rag", [0.05, 0.1, 0.2], out=Path("runs/tune"), limit=30)
    print(result.chosen, result.config_path)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError

from .baselines import PROMPTS
from .datasets import DEFAULT_DATA_DIR, dataset_spec
from .runner import ProgressCallback, RunSummary, evaluate_configs

THRESHOLD_FIELD = {
    "token_rag": "theta",
    "flare": "theta",
    "rind": "theta",
    "gnll": "threshold",
    "entropy": "threshold",
    "entity_freq": "tau",
    "cooc": "tau_cooc",
}


def with_threshold(base: PipelineConfig, signal: str, value: float) -> PipelineConfig:
    """``base`` with ``signal`` acting at ``value`` (added to the gate if absent); other rules as they were."""
    if signal not in THRESHOLD_FIELD:
        raise ConfigError(f"cannot tune {signal!r}; tunable signals: {', '.join(THRESHOLD_FIELD)}")
    data = base.model_dump(mode="json")
    rules: list[dict[str, Any]] = data["gate"]["rules"]
    rule = next((r for r in rules if r["signal"] == signal), None)
    if rule is None:
        rule = {"signal": signal}
        rules.append(rule)
    rule[THRESHOLD_FIELD[signal]] = value
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
    base = base or PipelineConfig()
    if base.prompt == "cot":
        base = base.model_copy(update={"prompt": PROMPTS.get(spec.name, "cot")})
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
    data = chosen_cfg.model_dump(mode="json", include={"model", "gate", "generation"})
    data["model"] = {"name": chosen_cfg.model.name}
    comment = "\n".join(f"# {line}" for line in [header, *table.splitlines()])
    config_path = out / f"tuned_{spec.name}_{signal}.yaml"
    config_path.write_text(comment + "\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return TuneResult(
        dataset=spec.name, signal=signal, rows=rows, chosen=best.value, config_path=config_path, table_path=table_path
    )


__all__ = ["THRESHOLD_FIELD", "SweepRow", "TuneResult", "choose", "tune", "with_threshold"]
