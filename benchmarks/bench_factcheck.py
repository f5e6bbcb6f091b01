"""Fact-checking on SciFact (issue 20), on the default model and the 5,183 SciFact abstracts.

Stages (each resumable; records under ``--out``, default ``benchmarks/results/factcheck``):

``sweep --split train|dev [--limit N]``: every claim checked once per forced variant (each route,
and always-retrieve) from one shared closed-book assessment (``FactChecker.sweep``):
``OUT/SPLIT/VARIANT/verdicts.jsonl``.

``tune [--budget 0.6]``: on the train sweep only: the routing thresholds (α, β) with the best
macro-F1 within the search budget (a replay of the forced runs, :mod:`gatedrag.evals.routing_replay`)
and a calibration of the routed verdicts' confidence (a combiner of their features, platt or
isotonic, whichever has the lower out-of-fold ECE): ``OUT/tuned.yaml`` (a config file:
``gatedrag check --config``) and ``OUT/calibration.json`` (``--calibration``).

``routed --split dev``: the tuned configuration run for real, as ``gatedrag check --claims`` does:
``OUT/SPLIT/routed/``, with its own wall time per claim.

``report --split dev``: every arm scored on the same claims (``OUT/SPLIT/report.md`` and ``.json``,
a reliability diagram ``OUT/SPLIT/reliability.png``).

    HF_HUB_OFFLINE=1 python benchmarks/bench_factcheck.py sweep --split train --limit 96
    python benchmarks/bench_factcheck.py tune
    HF_HUB_OFFLINE=1 python benchmarks/bench_factcheck.py sweep --split dev
    HF_HUB_OFFLINE=1 python benchmarks/bench_factcheck.py routed --split dev
    python benchmarks/bench_factcheck.py report --split dev
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from common import DATA, machine

from gatedrag.config import PipelineConfig
from gatedrag.evals.claims import LabelledClaim, load_scifact, scifact_sentences
from gatedrag.evals.factcheck_eval import (
    BASELINES,
    ArmScores,
    assessment_calls,
    fit_calibration,
    forced_variants,
    route_runs,
    routed_records,
    score_arm,
)
from gatedrag.evals.routing_replay import tune_routing
from gatedrag.factcheck.batch import RECORDS, ClaimRecord, check_claims, sweep_claims
from gatedrag.factcheck.checker import VERDICT_FEATURES, FactChecker
from gatedrag.factcheck.claims import Claim
from gatedrag.factcheck.config import FactCheckConfig
from gatedrag.factcheck.routing import RoutingConfig
from gatedrag.gate.combiner import Combiner
from gatedrag.records import read_jsonl

SCIFACT = DATA / "scifact"
CORPUS = SCIFACT / "corpus.jsonl"
SPLITS = {"train": "claims_train.jsonl", "dev": "claims_dev.jsonl"}
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "factcheck"


def labelled(split: str, limit: int | None) -> list[LabelledClaim]:
    return load_scifact(SCIFACT / SPLITS[split], limit=limit)


def as_claims(claims: list[LabelledClaim]) -> list[Claim]:
    return [Claim(id=c.id, claim=c.claim, fields={"gold": c.label}) for c in claims]


def checker(config: FactCheckConfig, calibration: Combiner | None = None) -> FactChecker:
    from gatedrag.factory import build_components

    cfg = PipelineConfig.model_validate({"retrieval": {"corpus": str(CORPUS)}})
    parts = build_components(cfg, progress=print)
    return FactChecker(
        parts.lm,
        parts.retriever,
        config,
        calibration=calibration,
        sentences=scifact_sentences(SCIFACT / "corpus_official.jsonl"),
    )


def forced_records(out: Path, split: str) -> dict[str, dict[str, ClaimRecord]]:
    return {
        name: {r.id: r for r in read_jsonl(out / split / name / RECORDS, ClaimRecord)}
        for name in forced_variants(FactCheckConfig())
    }


def cmd_sweep(args: argparse.Namespace) -> None:
    claims = labelled(args.split, args.limit)
    base = FactCheckConfig()
    t0 = time.perf_counter()
    swept = sweep_claims(
        checker(base),
        as_claims(claims),
        forced_variants(base),
        args.out / args.split,
        corpus=str(CORPUS),
        on_batch=lambda done, total: print(f"{time.strftime('%X')} {done}/{total} claims", flush=True),
    )
    print(f"swept {len(claims)} {args.split} claims in {time.perf_counter() - t0:.0f} s")
    for name, records in swept.items():
        labels = {lab: sum(r.label == lab for r in records) for lab in ("supported", "refuted", "nei")}
        print(f"  {name}: {labels}, {sum(r.searches for r in records) / max(1, len(records)):.2f} searches a claim")


def cmd_tune(args: argparse.Namespace) -> None:
    claims = labelled("train", None)
    gold = {c.id: c.label for c in claims}
    forced = forced_records(args.out, "train")
    runs = route_runs(gold, forced)
    if not runs:
        raise SystemExit("no train claim checked by every route: run `sweep --split train` first")
    taus = sorted({round(r.tau, 3) for r in runs})
    gammas = sorted({round(r.gamma, 3) for r in runs})
    grid = sorted({0.0, 1.01, *taus}), sorted({0.0, 1.01, *gammas})
    best, table = tune_routing(runs, *grid, max_searches=args.budget)
    chosen = routed_records(runs, forced, alpha=best.alpha, beta=best.beta)
    fits = {kind: fit_calibration(chosen, gold, kind=kind, dataset="scifact-train") for kind in ("platt", "isotonic")}
    kind = min(fits, key=lambda k: fits[k].fitted["ece_oof"])
    fits[kind].save(args.out / "calibration.json")
    tuned = {"factcheck": {"routing": RoutingConfig(alpha=best.alpha, beta=best.beta).model_dump()}}
    header = (
        f"# tuned on {len(runs)} SciFact train claims by benchmarks/bench_factcheck.py tune "
        f"(budget {args.budget} searches a claim): macro-F1 {best.macro_f1:.3f}, "
        f"{best.searches_per_claim:.2f} searches a claim on them\n"
    )
    (args.out / "tuned.yaml").write_text(header + yaml.safe_dump(tuned, sort_keys=False), encoding="utf-8")
    summary = {
        "claims": len(runs),
        "budget": args.budget,
        "best": best.model_dump(exclude={"labels"}),
        "calibration": {k: f.fitted for k, f in fits.items()},
        "calibration_kind": kind,
        "table": [t.model_dump(exclude={"labels"}) for t in table],
        "machine": machine(),
    }
    (args.out / "tune.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"alpha {best.alpha} beta {best.beta}: macro-F1 {best.macro_f1:.3f}, {best.searches_per_claim:.2f} searches")
    print(f"calibration: {kind} {fits[kind].fitted}")


def tuned_config(out: Path) -> tuple[FactCheckConfig, Combiner]:
    from gatedrag.config import load_config

    config = load_config(out / "tuned.yaml").factcheck
    return config, Combiner.load(out / "calibration.json", expect_features=VERDICT_FEATURES)


def cmd_routed(args: argparse.Namespace) -> None:
    config, calibration = tuned_config(args.out)
    claims = labelled(args.split, args.limit)
    t0 = time.perf_counter()
    records = check_claims(
        checker(config, calibration),
        as_claims(claims),
        args.out / args.split / "routed",
        corpus=str(CORPUS),
        on_record=lambda r, done, total: print(f"{time.strftime('%X')} {done}/{total}", flush=True),
    )
    print(f"checked {len(records)} claims in {time.perf_counter() - t0:.0f} s")


def _table(arms: list[ArmScores]) -> str:
    lines = [
        "| arm | acc | macro-F1 | F1 sup / ref / nei | ECE | searches | LLM calls | s/claim | gold abstract cited |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in arms:
        f1 = " / ".join(f"{a.f1[k]:.3f}" for k in ("supported", "refuted", "nei"))
        lines.append(
            f"| {a.arm} | {a.accuracy:.3f} | {a.macro_f1:.3f} | {f1} | "
            f"{'-' if a.ece is None else f'{a.ece:.3f}'} | {a.searches:.2f} | {a.llm_calls:.1f} | "
            f"{'(sweep)' if a.seconds is None else f'{a.seconds:.1f}'} | "
            f"{'-' if a.evidence_found is None else f'{a.evidence_found:.3f}'} |"
        )
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> None:
    claims = labelled(args.split, args.limit)
    forced = forced_records(args.out, args.split)
    have = [c for c in claims if all(c.id in recs for recs in forced.values())]
    config, calibration = tuned_config(args.out)
    alpha, beta = config.routing.alpha, config.routing.beta
    arms = [score_arm(arm, list(forced[v].values()), have, timed=False) for arm, v in BASELINES.items()]
    runs = route_runs({c.id: c.label for c in have}, forced)
    replayed = routed_records(runs, forced, alpha=alpha, beta=beta)
    arms.append(score_arm(f"routed, replayed (α {alpha}, β {beta}), uncalibrated", replayed, have, timed=False))
    calibrated = [calibration.probability(r.features) for r in replayed]
    arms.append(score_arm("routed, replayed, calibrated", replayed, have, confidence=calibrated, timed=False))
    routed_dir = args.out / args.split / "routed" / RECORDS
    real = {r.id: r for r in read_jsonl(routed_dir, ClaimRecord)} if routed_dir.is_file() else {}
    real_claims = [c for c in have if c.id in real]
    if real_claims:
        arms.append(score_arm("routed, run (calibrated)", list(real.values()), real_claims))
        same = sum(real[c.id].label == r.label for c, r in zip(have, replayed) if c.id in real)
        agreement = f"the routed run gives the replayed label on {same}/{len(real_claims)} of its claims"
    else:
        agreement = "no routed run yet"
    k_calls = assessment_calls(FactCheckConfig())
    report = "\n".join(
        [
            f"# Fact-checking, SciFact {args.split}: {len(have)} claims, the SciFact abstracts, the default model",
            "",
            _table(arms),
            "",
            f"LLM calls count the shared closed-book assessment ({k_calls} prompts a claim: the verdict, 2K "
            "rationales, 2K² contradiction pairs); the baselines alone need that many fewer, less the one "
            "closed-book verdict never-retrieve uses. s/claim '(sweep)': the arm's records come from a sweep "
            f"that ran every variant at once. {agreement}.",
        ]
    )
    out = args.out / args.split
    (out / "report.md").write_text(report + "\n", encoding="utf-8")
    (out / "report.json").write_text(
        json.dumps({"arms": [a.model_dump() for a in arms], "machine": machine()}, indent=1), encoding="utf-8"
    )
    _diagram([a for a in arms if "replayed" in a.arm or "run" in a.arm], out / "reliability.png")
    print(report)


def _diagram(arms: list[ArmScores], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for a in arms:
        xs = [b.confidence for b in a.reliability]
        ys = [b.accuracy for b in a.reliability]
        ax.plot(xs, ys, marker="o", label=f"{a.arm} (ECE {a.ece:.3f})" if a.ece is not None else a.arm)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, loc="upper left")
    ax.set_title("Verdict reliability, SciFact dev")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("sweep", "tune", "routed", "report"):
        s = sub.add_parser(name)
        s.add_argument("--out", type=Path, default=RESULTS)
        if name != "tune":
            s.add_argument("--split", choices=sorted(SPLITS), default="dev")
            s.add_argument("--limit", type=int, default=None)
        else:
            s.add_argument("--budget", type=float, default=0.6)
    args = p.parse_args()
    {"sweep": cmd_sweep, "tune": cmd_tune, "routed": cmd_routed, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
