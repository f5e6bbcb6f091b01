"""``gatedrag eval``, ``gatedrag report`` and ``gatedrag tune``: the evaluation harness's commands.

They drive :mod:`gatedrag.evals` (imported when a command runs, never at start-up).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from gatedrag.cli.common import console, err_console, quiet_libraries, user_errors

DATA_HELP = "Benchmark data directory (the layout of ../shared/data)."


BACKEND_HELP = "Model backend: auto, hf, llamacpp, topk or openai (overrides the config's model.backend)."


def _base_config(
    config: Path | None, model: str | None, device: str | None, batch_size: int | None, backend: str | None = None
):
    from gatedrag.config import PipelineConfig, load_config

    cfg = load_config(config) if config else PipelineConfig()
    return _overridden(cfg, model, device, batch_size, backend)


def _overridden(cfg: Any, model: str | None, device: str | None, batch_size: int | None, backend: str | None = None):
    model_update = {k: v for k, v in {"name": model, "device": device, "backend": backend}.items() if v is not None}
    if model_update:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update=model_update)})
    if batch_size is not None:
        cfg = cfg.model_copy(update={"decoding": cfg.decoding.model_copy(update={"batch_size": batch_size})})
    from gatedrag.config import parse_config

    return parse_config(cfg.model_dump())


def _comma_list(value: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated option."""
    return [m.strip() for m in value.split(",") if m.strip()]


def _methods(value: str, *, custom: bool = False) -> list[str]:
    from gatedrag.errors import ConfigError
    from gatedrag.evals.baselines import METHODS

    names = _comma_list(value)
    if value.strip() == "all":
        return list(METHODS)
    if value.strip() == "none" and custom:
        return []
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ConfigError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)} or all"
        )
    return names


class _Bars:
    """A rich progress bar per method: questions done, questions/s, ETA, EM of the new answers."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} q/s"),
            TimeRemainingColumn(),
            TextColumn("EM {task.fields[em]}"),
            console=err_console,
        )
        self.tasks: dict[str, tuple[TaskID, float, int, list[float]]] = {}

    def on_method(self, method: str, done: int, total: int) -> None:
        task = self.progress.add_task(method, total=total, completed=done, rate="-", em="-")
        self.tasks[method] = (task, time.perf_counter(), done, [])

    def on_record(self, method: str, record: Any, done: int, total: int) -> None:
        task, t0, start, ems = self.tasks[method]
        ems.append(record.em)
        rate = (done - start) / max(1e-9, time.perf_counter() - t0)
        self.progress.update(task, completed=done, rate=f"{rate:.2f}", em=f"{sum(ems) / len(ems):.3f} (new)")

    def log(self, message: str) -> None:
        self.progress.console.log(message)


def _custom_methods(
    values: list[str], model: str | None, device: str | None, batch_size: int | None, backend: str | None = None
) -> dict:
    """``NAME=CONFIG`` options: the user's own configs, run as extra methods beside the baselines."""
    from gatedrag.config import load_config
    from gatedrag.errors import ConfigError
    from gatedrag.evals.baselines import METHODS

    out: dict = {}
    for value in values:
        name, sep, path = value.partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise ConfigError(f"--method takes NAME=CONFIG (a YAML/TOML file), got {value!r}")
        if name in METHODS or name in out:
            raise ConfigError(f"--method name {name!r} is already taken; choose another name")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"--method name {name!r}: use letters, digits, '-' and '_' (it names a file)")
        out[name] = _overridden(load_config(Path(path.strip())), model, device, batch_size, backend)
    return out


def _summary_table(title: str, summaries: list[Any]) -> Table:
    table = Table(title=title, header_style="bold")
    for col in ("method", "EM", "F1", "ret/q", "LLM calls/q", "s/q"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for s in summaries:
        table.add_row(
            s.method,
            f"{s.em:.3f}",
            f"{s.f1:.3f}",
            f"{s.retrievals_per_q:.2f}",
            f"{s.llm_calls_per_q:.2f}",
            f"{s.seconds_per_q:.1f}",
        )
    return table


def run_eval(
    dataset: Annotated[str, typer.Option(help="hotpotqa, 2wikimultihopqa, musique, popqa or pubmedqa.")],
    out: Annotated[Path, typer.Option(help="Output directory (created; an existing one is resumed).")],
    methods: Annotated[str, typer.Option(help="Comma-separated methods, or all.")] = "all",
    limit: Annotated[int | None, typer.Option(min=1, help="First N questions of the dataset.")] = 100,
    data: Annotated[Path, typer.Option(help=DATA_HELP)] = Path("../shared/data"),
    config: Annotated[Path | None, typer.Option(help="Base YAML/TOML config (model, retrieval, gate).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or directory (overrides the config).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda: on a GPU machine, --device cuda.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Questions decoded together.")] = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="NAME=CONFIG: also run your own config (YAML/TOML) as method NAME; repeatable. "
            "With only these, pass --methods none.",
        ),
    ] = None,
) -> None:
    """Run METHODS on the first LIMIT questions of DATASET; resumable, one JSONL file per method."""
    from gatedrag.evals.runner import evaluate

    with user_errors():
        custom = _custom_methods(method or [], model, device, batch_size, backend)
        names = _methods(methods, custom=bool(custom))
        base = _base_config(config, model, device, batch_size, backend)
        quiet_libraries()
        bars = _Bars()
        with bars.progress:
            summaries = evaluate(
                dataset,
                names,
                out=out,
                limit=limit,
                data_dir=data,
                base=base,
                custom=custom,
                on_record=bars.on_record,
                on_method=bars.on_method,
                progress=bars.log,
            )
    n = summaries[0].questions if summaries else 0
    console.print(_summary_table(f"{dataset}: {n} questions", summaries))
    console.print(f"Records in {out}; write the report with: gatedrag report {out}")


def run_report(
    out: Annotated[Path, typer.Argument(help="An evaluation directory written by gatedrag eval.")],
    plots: Annotated[bool, typer.Option(help="Also draw the PNG plots.")] = True,
    methods: Annotated[
        str | None,
        typer.Option(help="Comma-separated methods to compare (default: every method recorded in OUT)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Report file (default OUT/report.md); plots are written beside it.")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(help="Method the others are tested against (McNemar); default gated, else no-rag."),
    ] = None,
) -> None:
    """Write OUT/report.md (tables per dataset, calibration) and PNG plots from the records in OUT."""
    from gatedrag.evals.report import write_report

    chosen = _comma_list(methods) if methods else None
    with user_errors():
        path = write_report(out, plots=plots, methods=chosen, output=output, reference=reference)
    console.print(f"Wrote {path}")


def run_tune(
    dataset: Annotated[
        str, typer.Option(help="Dataset whose dev questions are used (with --combiner: comma-separated datasets).")
    ],
    out: Annotated[Path, typer.Option(help="Output directory (resumable).")],
    signal: Annotated[
        str | None, typer.Option(help="Signal to tune: token_rag, flare, rind, gnll, entropy, entity_freq or cooc.")
    ] = None,
    values: Annotated[str | None, typer.Option(help="Comma-separated thresholds to try, e.g. 0.05,0.1,0.2.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Questions per threshold.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="First question used (default: after the eval's 100).")] = 100,
    max_retrievals: Annotated[
        float | None, typer.Option(help="Pick the best EM among thresholds within this many retrievals/q.")
    ] = None,
    data: Annotated[Path, typer.Option(help=DATA_HELP)] = Path("../shared/data"),
    config: Annotated[Path | None, typer.Option(help="Base YAML/TOML config to tune.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or directory (overrides the config).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Questions decoded together.")] = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    draft: Annotated[
        bool,
        typer.Option(
            "--draft",
            help="Tune the judge of a closed-book draft (the config's `draft`) instead of the gate: "
            "two runs (closed-book, and with passages from the start) replayed at every threshold.",
        ),
    ] = False,
    combiner: Annotated[
        bool,
        typer.Option(
            "--combiner",
            help="Fit the combined score of answer selection instead: the config with policy.select on the dev "
            "questions of every --dataset, a logistic model over the candidates' features, calibrated "
            "(OUT/combiner.json; set policy.select.combiner to use it).",
        ),
    ] = False,
) -> None:
    """Sweep SIGNAL's threshold on a dev split; write the chosen config (YAML) and the sweep table.
    With --combiner, fit the combined score of answer selection on the dev split instead."""
    from gatedrag.errors import ConfigError
    from gatedrag.evals.tuning import tune, tune_draft

    with user_errors():
        base = _base_config(config, model, device, batch_size, backend)
        if combiner:
            _fit_combiner(dataset, out, limit, offset, data, base)
            return
        if signal is None or values is None:
            raise ConfigError("give --signal and --values to sweep a threshold (or --combiner to fit the combiner)")
        try:
            thresholds = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--values must be comma-separated numbers, got {values!r}") from None
        quiet_libraries()
        bars = _Bars()
        common: dict[str, Any] = {
            "out": out,
            "limit": limit,
            "offset": offset,
            "data_dir": data,
            "base": base,
            "max_retrievals": max_retrievals,
            "on_record": bars.on_record,
            "on_method": bars.on_method,
            "progress": bars.log,
        }
        if draft:
            with bars.progress:
                drafted = tune_draft(dataset, signal, thresholds, **common)
            console.print(_draft_table(drafted))
            console.print(
                f"Chosen draft {signal} threshold: {drafted.chosen:g} → {drafted.config_path} "
                f"(table: {drafted.table_path})"
            )
            return
        with bars.progress:
            result = tune(dataset, signal, thresholds, **common)
    console.print(_summary_table(f"{result.dataset}: {signal} sweep", [r.summary for r in result.rows]))
    console.print(f"Chosen {signal} threshold: {result.chosen:g} → {result.config_path} (table: {result.table_path})")


def _fit_combiner(datasets: str, out: Path, limit: int, offset: int, data: Path, base: Any) -> None:
    from gatedrag.evals.combining import tune_combiner

    quiet_libraries()
    bars = _Bars()
    with bars.progress:
        fitted, path = tune_combiner(
            [d for d in datasets.split(",") if d.strip()],
            out=out,
            limit=limit,
            offset=offset,
            data_dir=data,
            base=base,
            on_record=bars.on_record,
            on_method=bars.on_method,
            progress=bars.log,
        )
    f = fitted.fitted
    console.print(
        f"Combiner fitted on {f['candidates']} candidates of {f['questions']} questions ({f['right']} right): "
        f"out-of-fold AUROC {f['auroc_wrong_oof']} for a wrong answer (best single feature "
        f"{f['best_single_feature_auroc']}), ECE {f['ece_oof']} → {path}"
    )


def _draft_table(result: Any) -> Table:
    table = Table(title=f"{result.dataset}: draft judged by {result.signal}")
    for col in ("threshold", "drafts kept", "EM", "F1", "Acc", "retrievals/q"):
        table.add_column(col, justify="right")
    for r in result.rows:
        mark = " *" if r.value == result.chosen else ""
        table.add_row(
            f"{r.value:g}{mark}",
            f"{r.kept:.0%}",
            f"{r.em:.3f}",
            f"{r.f1:.3f}",
            f"{r.acc:.3f}",
            f"{r.retrievals_per_q:.2f}",
        )
    return table


__all__ = ["run_eval", "run_report", "run_tune"]
