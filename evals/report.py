"""``report.md`` and plots from an evaluation directory (see :mod:`gatedrag.evals.runner`).

For each dataset: a results table (EM, F1, retrievals, LLM calls, tokens and seconds per question),
a calibration table (AUROC for predicting a wrong answer and PRR of every signal and of the
confidence, ECE of the confidence), and three PNG plots: EM against retrievals per question (one
point per method), the reliability diagram of the confidence, and each signal's histogram split by
right and wrong answers.

A question's value of a signal is its **maximum over the sentences the model wrote** (rejected ones
included): the most doubt the signal saw while answering. The confidence's uncertainty is
``1 - confidence``.

Example::

    from pathlib import Path
    from gatedrag.evals.report import write_report
    write_report(Path("runs/issue4"))  # -> runs/issue4/report.md and runs/issue4/*.png
    # only some methods (compared on the questions all of them answered), into another file:
    write_report(Path("runs/issue4"), methods=["no-rag", "gated"], output=Path("runs/issue4/gated.md"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from .calibration import auroc, ece, prr, reliability
from .metrics import score
from .runner import QuestionRecord, read_records
from .significance import paired, wilson_interval

DEFAULT_REFERENCES = ("gated", "no-rag")
CONFIDENCE = "confidence"


def signal_order(present: set[str] | Sequence[str]) -> list[str]:
    """The signals of ``present`` in report order (registered ones in registration order, then the
    rest by name), with ``1 - confidence`` last when present."""
    from gatedrag.config import RULES

    present = set(present)
    known = [s for s in RULES if s in present]
    rest = sorted(present - set(RULES) - {CONFIDENCE})
    return known + rest + ([CONFIDENCE] if CONFIDENCE in present else [])


class MethodResult(BaseModel):
    dataset: str
    method: str
    questions: int
    em: float
    f1: float
    acc: float
    """Answer-contained accuracy (:func:`~gatedrag.evals.metrics.contains`), computed from the records."""
    retrievals: float
    llm_calls: float
    generated_tokens: float
    prompt_tokens: float
    seconds: float
    latency: float
    errors: int
    auroc: dict[str, float | None]
    prr: dict[str, float | None]
    coverage: dict[str, int] = Field(default_factory=dict)
    """Questions on which each signal had a value (a corpus signal has none where the question or
    answer held no entity or claim); its AUROC / PRR are over those questions only."""
    ece: float | None


def question_signals(record: QuestionRecord) -> dict[str, float]:
    """Question-level uncertainty per signal (max over sentences) plus ``1 - confidence``."""
    values = {name: max(vals) for name, vals in record.signals.items() if vals}
    values[CONFIDENCE] = 1.0 - record.confidence
    return values


def summarize(records: Sequence[QuestionRecord], dataset: str, method: str) -> MethodResult:
    n = max(1, len(records))
    wrong = [r.em < 1.0 for r in records]
    per_q = [question_signals(r) for r in records]
    names = signal_order({k for q in per_q for k in q} | {CONFIDENCE})
    au, pr, cover = {}, {}, {}
    for name in names:
        have = [(q[name], w, r.em) for q, w, r in zip(per_q, wrong, records) if name in q]
        cover[name] = len(have)
        au[name] = auroc([h[0] for h in have], [h[1] for h in have]) if have else None
        pr[name] = prr([h[0] for h in have], [h[2] for h in have]) if have else None
    return MethodResult(
        dataset=dataset,
        method=method,
        questions=len(records),
        em=sum(r.em for r in records) / n,
        f1=sum(r.f1 for r in records) / n,
        acc=sum(score(r.prediction, r.answers, r.metric)["acc"] for r in records) / n,
        retrievals=sum(r.counts.retrievals for r in records) / n,
        llm_calls=sum(r.counts.llm_calls for r in records) / n,
        generated_tokens=sum(r.counts.generated_tokens for r in records) / n,
        prompt_tokens=sum(r.counts.prompt_tokens for r in records) / n,
        seconds=sum(r.seconds for r in records) / n,
        latency=sum(r.counts.wall_time_s for r in records) / n,
        errors=sum(1 for r in records if r.error),
        auroc=au,
        prr=pr,
        coverage=cover,
        ece=ece([r.confidence for r in records], [not w for w in wrong]),
    )


def load_runs(out: Path) -> dict[str, dict[str, list[QuestionRecord]]]:
    """``{dataset: {method: records}}`` for every ``OUT/<dataset>/<method>.jsonl``."""
    from .baselines import METHODS

    order = {name: i for i, name in enumerate(METHODS)}
    runs: dict[str, dict[str, list[QuestionRecord]]] = {}
    paths = sorted(out.glob("*/*.jsonl"), key=lambda p: (p.parent.name, order.get(p.stem, len(order)), p.stem))
    for path in paths:
        records = read_records(path)
        if records:
            runs.setdefault(path.parent.name, {})[path.stem] = records
    return runs


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _common_ids(methods: dict[str, list[QuestionRecord]]) -> set[str]:
    ids = [set(r.id for r in recs) for recs in methods.values()]
    return set.intersection(*ids) if ids else set()


def _plots(
    dataset: str, methods: dict[str, list[QuestionRecord]], results: list[MethodResult], out: Path, prefix: str
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in results:
        ax.scatter(r.retrievals, r.em, s=40)
        ax.annotate(r.method, (r.retrievals, r.em), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("retrievals per question")
    ax.set_ylabel("exact match")
    ax.set_title(f"{dataset}: EM vs retrievals ({results[0].questions} questions)")
    ax.grid(alpha=0.3)
    name = f"{prefix}{dataset}_em_vs_retrievals.png"
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    files.append(name)

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for method, recs in methods.items():
        bins = reliability([r.confidence for r in recs], [r.em >= 1.0 for r in recs], bins=10)
        ax.plot([b.confidence for b in bins], [b.accuracy for b in bins], marker="o", markersize=3, label=method)
    ax.set_xlabel("confidence (mean per bin)")
    ax.set_ylabel("exact match (per bin)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{dataset}: reliability of the confidence")
    ax.legend(fontsize=7)
    name = f"{prefix}{dataset}_reliability.png"
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    files.append(name)

    pooled: dict[str, tuple[list[float], list[float]]] = {}
    for recs in methods.values():
        for r in recs:
            for sig, v in question_signals(r).items():
                right, wrong = pooled.setdefault(sig, ([], []))
                (right if r.em >= 1.0 else wrong).append(v)
    names = signal_order(pooled)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, sig in zip(axes.flat, names):
        right, wrong = pooled[sig]
        ax.hist([right, wrong], bins=20, label=["right", "wrong"], color=["tab:green", "tab:red"], alpha=0.7)
        ax.set_title("1 - confidence" if sig == CONFIDENCE else sig, fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: question-level signal values, all methods pooled", fontsize=10)
    name = f"{prefix}{dataset}_signals.png"
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    files.append(name)
    return files


def _cell(r: MethodResult, signal: str) -> str:
    if signal not in r.auroc:
        return ""
    text = f"{_fmt(r.auroc.get(signal))} ({_fmt(r.prr.get(signal), 2)})"
    n = r.coverage.get(signal, r.questions)
    return text if n >= r.questions else f"{text} [{n}]"


def _select(
    runs: dict[str, dict[str, list[QuestionRecord]]], methods: Sequence[str]
) -> dict[str, dict[str, list[QuestionRecord]]]:
    from gatedrag.errors import InputError

    present = {m for per_dataset in runs.values() for m in per_dataset}
    unknown = [m for m in methods if m not in present]
    if unknown:
        raise InputError(f"no records for method(s) {', '.join(unknown)}; recorded: {', '.join(sorted(present))}")
    chosen = {ds: {m: recs for m, recs in per.items() if m in methods} for ds, per in runs.items()}
    return {ds: per for ds, per in chosen.items() if per}


def _significance(per_method: dict[str, list[QuestionRecord]], reference: str | None) -> list[str]:
    """Wilson 95 % interval of each EM and the exact McNemar test of each method against a reference."""
    ref = reference if reference in per_method else next((m for m in DEFAULT_REFERENCES if m in per_method), None)
    ref = ref or next(iter(per_method))
    lines = [
        "",
        f"EM with its 95 % Wilson interval; against `{ref}` on the same questions: questions gained (right only "
        "with the method), lost (right only with the reference) and the exact McNemar p-value:",
        "",
        f"| method | EM [95 % CI] | gained vs {ref} | lost vs {ref} | p |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, recs in per_method.items():
        right = sum(1 for r in recs if r.em >= 1.0)
        lo, hi = wilson_interval(right, len(recs))
        cells = f"| {method} | {right / max(1, len(recs)):.3f} [{lo:.2f}, {hi:.2f}] |"
        if method == ref:
            lines.append(f"{cells} – | – | – |")
        else:
            c = paired(recs, per_method[ref], method, ref)
            lines.append(f"{cells} {c.gained} | {c.lost} | {c.p_value:.3f} |")
    return lines


def write_report(
    out: Path,
    *,
    plots: bool = True,
    methods: Sequence[str] | None = None,
    output: Path | None = None,
    reference: str | None = None,
) -> Path:
    """Write ``OUT/report.md`` (and plots) from the records under ``OUT``; returns the report path.

    ``methods`` keeps only those methods (each dataset then compares them on the questions all of
    them answered, so a method run on fewer questions does not shrink the others' table unless it
    is chosen). ``output`` writes the report elsewhere than ``OUT/report.md``; its plots go beside
    it, their names prefixed with the report's stem. ``reference`` is the method the others are
    tested against (McNemar, same questions); default ``gated``, else ``no-rag``, else the first.
    """
    from gatedrag.errors import InputError

    runs = load_runs(out)
    if not runs:
        raise InputError(f"no evaluation records under {out} (expected {out}/<dataset>/<method>.jsonl)")
    if methods:
        runs = _select(runs, methods)
    if reference is not None and not any(reference in per_method for per_method in runs.values()):
        raise InputError(f"reference method {reference!r} has no records among the methods reported")
    path = output if output is not None else out / "report.md"
    prefix = "" if output is None else f"{path.stem}_"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Evaluation report: {out}", ""]
    lines += [
        "Question-level signal = max over the sentences written; AUROC / PRR for predicting a wrong answer "
        "(EM = 0); Acc = a gold answer occurs in the prediction (PopQA-style accuracy); ECE of the confidence shown to users (10 equal-width bins). s/q = batch wall time / questions. "
        "ΔEM per retrieval = (EM − EM of no-rag) / retrievals per question: answers gained per retrieval.",
        "",
    ]
    for dataset, per_method in runs.items():
        common = _common_ids(per_method)
        if common and any(len(v) != len(common) for v in per_method.values()):
            note = f"only the {len(common)} questions every method answered are compared"
            per_method = {m: [r for r in recs if r.id in common] for m, recs in per_method.items()}
        else:
            note = ""
        results = [summarize(recs, dataset, m) for m, recs in per_method.items()]
        lines += [f"## {dataset} ({results[0].questions} questions{'; ' + note if note else ''})", ""]
        closed = next((r.em for r in results if r.method == "no-rag"), None)
        lines += [
            "| method | EM | F1 | Acc | retrievals/q | ΔEM per retrieval | LLM calls/q | gen. tokens/q | prompt tokens/q "
            "| s/q | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results:
            gain = _fmt((r.em - closed) / r.retrievals) if closed is not None and r.retrievals > 0 else "–"
            lines.append(
                f"| {r.method} | {r.em:.3f} | {r.f1:.3f} | {r.acc:.3f} | {r.retrievals:.2f} | {gain} | {r.llm_calls:.2f} | "
                f"{r.generated_tokens:.1f} | {r.prompt_tokens:.0f} | {r.seconds:.1f} | {r.errors} |"
            )
        lines += _significance(per_method, reference)
        names = signal_order({s for r in results for s in r.auroc})
        lines += [
            "",
            "AUROC (PRR) for predicting a wrong answer; ECE of the confidence. [n]: the signal had a value on "
            "only n of the questions, and the scores are over those:",
            "",
        ]
        header = " | ".join("1 − confidence" if s == CONFIDENCE else s for s in names)
        lines += [f"| method | {header} | ECE |", "|---|" + "---:|" * (len(names) + 1)]
        for r in results:
            cells = [_cell(r, s) for s in names]
            lines.append(f"| {r.method} | {' | '.join(cells)} | {_fmt(r.ece)} |")
        if plots:
            lines += [""] + [f"![{f}]({f})" for f in _plots(dataset, per_method, results, path.parent, prefix)]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


__all__ = ["MethodResult", "load_runs", "question_signals", "signal_order", "summarize", "write_report"]
