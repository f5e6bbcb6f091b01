"""``gatedrag check``: one claim -> a verdict card (label, confidence, why it searched, evidence), or
a claims file -> one record per claim in ``--out`` (resumable: rerun the same command after an
interruption)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gatedrag.cli.common import console, err_console, quiet_libraries, status_progress, user_errors
from gatedrag.errors import InputError

if TYPE_CHECKING:
    from gatedrag.factcheck.checker import FactChecker
    from gatedrag.factcheck.events import Verdict

COLOURS = {"supported": "green", "refuted": "red", "nei": "yellow"}
WORDS = {"supported": "SUPPORTED", "refuted": "REFUTED", "nei": "NOT ENOUGH INFO"}


def load_checker(config: Path | None, corpus: Path | None, calibration: Path | None) -> FactChecker:
    """The fact checker on the configured model and corpus (default: the demo corpus)."""
    from gatedrag.config import PipelineConfig, load_config
    from gatedrag.factcheck.checker import VERDICT_FEATURES
    from gatedrag.factory import build_checker, build_components
    from gatedrag.gate.combiner import Combiner

    cfg = load_config(config) if config else PipelineConfig()
    if corpus is not None:
        cfg = cfg.model_copy(update={"retrieval": cfg.retrieval.model_copy(update={"corpus": corpus})})
    calibrated = Combiner.load(calibration, expect_features=VERDICT_FEATURES) if calibration else None
    quiet_libraries()
    with err_console.status("Loading the model and index…") as status:
        parts = build_components(cfg, progress=status_progress(status))
    return build_checker(cfg, parts, calibration=calibrated)


def verdict_card(verdict: Verdict) -> Panel:
    """The rich card of one verdict."""
    lines = [
        f"[bold {COLOURS[verdict.label]}]{WORDS[verdict.label]}[/] (confidence {verdict.confidence:.2f})",
        f"[dim]claim:[/dim] {escape(verdict.claim)}",
    ]
    for e in verdict.events:
        if e.type == "routed":
            why = ", ".join(f"{r.signal} {r.value:.2f} vs {r.threshold:.2f}" for r in e.reasons)
            lines.append(f"[dim]route:[/dim] {e.route} — {escape(e.note)} ({why})")
        elif e.type == "search_started":
            lines.append(f"[dim]search {e.round}:[/dim] {escape(e.query)} [dim]({escape(e.why)})[/dim]")
        elif e.type == "searched" and e.error:
            lines.append(f"[yellow]  {escape(e.error)}[/yellow]")
    for ev in verdict.evidence:
        lines.append(f"[cyan]evidence:[/cyan] {escape(ev.passage.title or ev.passage.id)}")
    if verdict.rationale:
        lines.append(f"[dim]rationale:[/dim] {escape(verdict.rationale)}")
    note = verdict.events[-1].note if verdict.events and verdict.events[-1].type == "verdict_given" else None
    if note:
        lines.append(f"[dim]{escape(note)}[/dim]")
    return Panel("\n".join(lines), title="gatedrag check", expand=False)


def run_check(
    claim: Annotated[str | None, typer.Argument(help="The claim to check.")] = None,
    claims: Annotated[
        Path | None, typer.Option("--claims", help='A JSONL file, one {"id", "claim"} object a line.')
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory for --claims (an existing one is resumed).")
    ] = None,
    corpus: Annotated[Path | None, typer.Option(help="JSONL corpus to search (default: the demo corpus).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML or TOML config (model, retrieval, factcheck: routing thresholds).")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="A calibration fitted on training claims (JSON): the confidence shown.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict with its trace as JSON.")] = False,
) -> None:
    """Check CLAIM (or every claim of --claims FILE into --out DIR): supported, refuted or not enough info."""
    from gatedrag.factcheck.claims import read_claims, validate_claim

    with user_errors():
        if (claim is None) == (claims is None):
            raise InputError("give one claim, or --claims FILE (not both)")
        if claims is not None and out is None:
            raise InputError("--claims needs --out DIR, where the verdicts are written")
        if claims is None:
            text = validate_claim(claim)
            verdict = load_checker(config, corpus, calibration).check(text)
            if as_json:
                console.print_json(verdict.model_dump_json())
            else:
                console.print(verdict_card(verdict))
            return
        assert out is not None
        todo = read_claims(claims)  # a malformed file fails before the model is loaded
        _check_file(load_checker(config, corpus, calibration), todo, out, corpus)


def _check_file(checker: FactChecker, todo: list, out: Path, corpus: Path | None) -> None:
    from gatedrag.factcheck.batch import RECORDS, check_claims

    columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("claims", total=len(todo))
        records = check_claims(
            checker,
            todo,
            out,
            corpus=str(corpus) if corpus else None,
            on_record=lambda r, done, total: progress.update(task, completed=done),
        )
    labels = {k: sum(r.label == k for r in records) for k in COLOURS}
    failed = sum(r.label is None for r in records)
    searches = sum(r.searches for r in records) / max(1, len(records))
    console.print(
        f"{len(records)} claims: {labels['supported']} supported, {labels['refuted']} refuted, "
        f"{labels['nei']} not enough info{f', {failed} failed' if failed else ''}; {searches:.2f} searches a claim. "
        f"Records in {out / RECORDS}"
    )


__all__ = ["load_checker", "run_check", "verdict_card"]
