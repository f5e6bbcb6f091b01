"""Fact-checking on SciFact (issue 20), on the default model and the 5,183 SciFact abstracts.

Stages (each resumable; records under ``--out``, default ``benchmarks/results/factcheck``):

``sweep --split train [--limit N]``: every claim checked once per forced variant (each route, and
always-retrieve) from one shared closed-book assessment (``FactChecker.sweep``):
``OUT/SPLIT/VARIANT/verdicts.jsonl``. With ``--arms`` (on dev): the baselines (``direct`` = never
retrieve, ``always_retrieve``, ``deep_search`` = always deep) and the tuned routing (``routed``).

``tune [--budget 0.6]``: on the train sweep only: the routing thresholds (α, β) with the best
macro-F1 within the search budget (a replay of the forced runs, :mod:`gatedrag.evals.routing_replay`)
and a calibration of the routed verdicts' confidence (a combiner of their features, platt or
isotonic, whichever has the lower out-of-fold ECE): ``OUT/tuned.yaml`` (a config file:
``gatedrag check --config``) and ``OUT/calibration.json`` (``--calibration``).

``routed --split dev [--limit N]``: the tuned configuration run alone, as ``gatedrag check --claims``
does: ``OUT/SPLIT/routed-run/``, with its own wall time per claim.

``report --split dev``: every arm scored on the same claims (``OUT/SPLIT/report.md`` and ``.json``,
a reliability diagram ``OUT/SPLIT/reliability.png``).

    HF_HUB_OFFLINE=1 python benchmarks/bench_factcheck.py sweep --split train --sample 48
    python benchmarks/bench_factcheck.py tune
    HF_HUB_OFFLINE=1 python benchmarks/bench_factcheck.py sweep --split dev --arms
    HF_HUB_OFFLINE=1 python benchmarks/bench_factcheck.py routed --split dev --sample 40
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
from gatedrag.factcheck.corpus import CorpusSignals
from gatedrag.factcheck.routing import RoutingConfig
from gatedrag.gate.combiner import Combiner
from gatedrag.records import read_jsonl

SCIFACT = DATA / "scifact"
CORPUS = SCIFACT / "corpus.jsonl"
SPLITS = {"train": "claims_train.jsonl", "dev": "claims_dev.jsonl"}
BIASED = "always_retrieve_biased"
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "factcheck"


def labelled(split: str, limit: int | None, sample: int | None = None) -> list[LabelledClaim]:
    """The split's first ``limit`` claims, or ``sample`` claims evenly spaced through it (the files
    are sorted by claim text: the first ones all start with a number)."""
    claims = load_scifact(SCIFACT / SPLITS[split], limit=limit)
    if sample is None or sample >= len(claims):
        return claims
    return [claims[i * len(claims) // sample] for i in range(sample)]


def as_claims(claims: list[LabelledClaim]) -> list[Claim]:
    return [Claim(id=c.id, claim=c.claim, fields={"gold": c.label}) for c in claims]


def checker(config: FactCheckConfig, backend: str, calibration: Combiner | None = None) -> FactChecker:
    from gatedrag.factory import build_checker, build_components

    cfg = PipelineConfig.model_validate(
        {"model": {"backend": backend}, "retrieval": {"corpus": str(CORPUS)}, "factcheck": config.model_dump()}
    )
    parts = build_components(cfg, progress=print)
    return build_checker(
        cfg, parts, calibration=calibration, sentences=scifact_sentences(SCIFACT / "corpus_official.jsonl")
    )


def corpus_signals() -> CorpusSignals:
    """The corpus signal on the SciFact abstracts (no model needed: spaCy and the corpus index)."""
    from gatedrag.corpus.extract import load_extractor
    from gatedrag.corpus.factory import build_corpus_stats

    stats = build_corpus_stats(PipelineConfig().corpus_stats, CORPUS, progress=print)
    return CorpusSignals(stats, load_extractor("spacy"))


def forced_records(out: Path, split: str, names: list[str]) -> dict[str, dict[str, ClaimRecord]]:
    return {name: {r.id: r for r in read_jsonl(out / split / name / RECORDS, ClaimRecord)} for name in names}


def cmd_sweep(args: argparse.Namespace) -> None:
    claims = labelled(args.split, args.limit, args.sample)
    base = FactCheckConfig()
    calibration = None
    variants = forced_variants(base)
    if args.arms:  # the baselines and the tuned routing, side by side on the same assessment
        tuned, calibration = tuned_config(args.out)
        base = base.model_copy(update={"corpus_signal": tuned.corpus_signal})
        variants = {v: forced_variants(base)[v] for v in BASELINES.values()} | {"routed": tuned}
        # always-retrieve with the tuned label bias too: what the bias alone buys, searching every claim
        variants[BIASED] = variants["always_retrieve"].model_copy(update={"label_bias": tuned.label_bias})
    t0 = time.perf_counter()
    swept = sweep_claims(
        checker(base, args.backend, calibration),
        as_claims(claims),
        variants,
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
    forced = forced_records(args.out, "train", list(forced_variants(FactCheckConfig())))
    runs = route_runs(gold, forced)
    if not runs:
        raise SystemExit("no train claim checked by every route: run `sweep --split train` first")
    if all(forced["direct"][r.id].corpus_fired is None for r in runs):
        # swept without the corpus signal: the forced runs do not depend on it (a forced route ignores
        # the signals), so its values are computed here, as the checker's assessment computes them
        text = {c.id: c.claim for c in claims}
        values = corpus_signals().evaluate([text[r.id] for r in runs])
        runs = [r.model_copy(update={"corpus_fired": any(v.fired for v in vs)}) for r, vs in zip(runs, values)]
    fired = sum(r.corpus_fired for r in runs)

    def deciles(values: list[float]) -> list[float]:  # a coarse grid: thresholds at every value would overfit
        v = sorted(values)
        return sorted({0.0, 1.01, *(round(v[min(len(v) - 1, len(v) * q // 10)], 3) for q in range(1, 10))})

    grid = deciles([r.tau for r in runs]), deciles([r.gamma for r in runs])
    biases = [  # log-offsets against the model's "True" default (contextual calibration), on a coarse grid
        {"refuted": r, "nei": n} for r in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0) for n in (-1.0, 0.0, 0.5, 1.0, 2.0)
    ]
    best, table = tune_routing(runs, *grid, max_searches=args.budget, corpus_doubt=(False, True), label_biases=biases)
    chosen = routed_records(runs, forced, alpha=best.alpha, beta=best.beta)
    fits = {kind: fit_calibration(chosen, gold, kind=kind, dataset="scifact-train") for kind in ("platt", "isotonic")}
    kind = min(fits, key=lambda k: fits[k].fitted["ece_oof"])
    fits[kind].save(args.out / "calibration.json")
    routing = RoutingConfig(alpha=best.alpha, beta=best.beta, corpus_doubt=best.corpus_doubt)
    bias = {k: v for k, v in best.label_bias.items() if v}
    tuned = {"factcheck": {"corpus_signal": best.corpus_doubt, "label_bias": bias, "routing": routing.model_dump()}}
    header = (
        f"# tuned on {len(runs)} SciFact train claims by benchmarks/bench_factcheck.py tune "
        f"(budget {args.budget} searches a claim): macro-F1 {best.macro_f1:.3f}, "
        f"{best.searches_per_claim:.2f} searches a claim on them\n"
    )
    (args.out / "tuned.yaml").write_text(header + yaml.safe_dump(tuned, sort_keys=False), encoding="utf-8")
    summary = {
        "claims": len(runs),
        "corpus_fired": fired,
        "budget": args.budget,
        "best": best.model_dump(exclude={"labels"}),
        "calibration": {k: f.fitted for k, f in fits.items()},
        "calibration_kind": kind,
        "pairs_scored": len(table),
        "top": [  # the 50 best settings within the budget
            t.model_dump(exclude={"labels"})
            for t in sorted(table, key=lambda t: -t.macro_f1)
            if t.searches_per_claim <= args.budget + 1e-12
        ][:50],
        "machine": machine(),
    }
    (args.out / "tune.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(
        f"alpha {best.alpha} beta {best.beta} corpus_doubt {best.corpus_doubt} label_bias {bias} (the corpus signal fired on "
        f"{fired}/{len(runs)}): macro-F1 {best.macro_f1:.3f}, {best.searches_per_claim:.2f} searches"
    )
    print(f"calibration: {kind} {fits[kind].fitted}")


def tuned_config(out: Path) -> tuple[FactCheckConfig, Combiner]:
    from gatedrag.config import load_config

    config = load_config(out / "tuned.yaml").factcheck
    return config, Combiner.load(out / "calibration.json", expect_features=VERDICT_FEATURES)


def cmd_routed(args: argparse.Namespace) -> None:
    config, calibration = tuned_config(args.out)
    claims = labelled(args.split, args.limit, args.sample)
    t0 = time.perf_counter()
    records = check_claims(
        checker(config, args.backend, calibration),
        as_claims(claims),
        args.out / args.split / "routed-run",
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
    claims = labelled(args.split, args.limit, args.sample)
    names = [*BASELINES.values(), "routed"]
    swept = forced_records(args.out, args.split, names)
    have = [c for c in claims if all(c.id in recs for recs in swept.values())]
    if not have:
        raise SystemExit(f"no {args.split} claim checked by every arm: run `sweep --split {args.split} --arms` first")
    config, _ = tuned_config(args.out)

    def raw(records: dict[str, ClaimRecord]) -> list[float]:  # the uncalibrated confidence: the label's share
        return [r.features.get("p_label", 0.0) for r in records.values()]

    arms = [
        score_arm(arm, list(swept[v].values()), have, confidence=raw(swept[v]), timed=False)
        for arm, v in BASELINES.items()
    ]
    biased_file = args.out / args.split / BIASED / RECORDS
    if biased_file.is_file():
        biased = {r.id: r for r in read_jsonl(biased_file, ClaimRecord)}
        if all(c.id in biased for c in have):
            arms.append(
                score_arm(
                    "always_retrieve + tuned label_bias",
                    list(biased.values()),
                    have,
                    confidence=raw(biased),
                    timed=False,
                )
            )
    routed = list(swept["routed"].values())
    name = f"routed (α {config.routing.alpha:.3f}, β {config.routing.beta:.3f})"
    arms.append(score_arm(f"{name}, uncalibrated", routed, have, confidence=raw(swept["routed"]), timed=False))
    arms.append(score_arm(f"{name}, calibrated", routed, have, timed=False))
    run_file = args.out / args.split / "routed-run" / RECORDS
    real = {r.id: r for r in read_jsonl(run_file, ClaimRecord)} if run_file.is_file() else {}
    real_claims = [c for c in have if c.id in real]
    if real_claims:
        arms.append(score_arm(f"routed, run alone on {len(real_claims)} claims", list(real.values()), real_claims))
        same = sum(real[c.id].label == swept["routed"][c.id].label for c in real_claims)
        agreement = f"The routed run alone gives the swept label on {same}/{len(real_claims)} of its claims."
    else:
        agreement = "No routed run alone yet (its s/claim comes from `routed`)."
    k_calls = assessment_calls(FactCheckConfig())
    report = "\n".join(
        [
            f"# Fact-checking, SciFact {args.split}: {len(have)} claims, the SciFact abstracts, the default model",
            "",
            _table(arms),
            "",
            f"LLM calls count the closed-book assessment every arm shares in the sweep ({k_calls} prompts a "
            "claim: the verdict, 2K rationales, 2K² contradiction pairs); the baselines alone need that many "
            "fewer, less the one closed-book verdict never-retrieve uses. s/claim '(sweep)': the records come "
            "from a sweep that ran the arms at once; the baselines' ECE is of their uncalibrated confidence "
            f"(the label's share of the verdict token's mass). {agreement}",
        ]
    )
    out = args.out / args.split
    (out / "report.md").write_text(report + "\n", encoding="utf-8")
    (out / "report.json").write_text(
        json.dumps({"arms": [a.model_dump() for a in arms], "machine": machine()}, indent=1), encoding="utf-8"
    )
    _diagram(arms, out / "reliability.png")
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
            s.add_argument("--sample", type=int, default=None, help="claims evenly spaced through the split")
        if name in ("sweep", "routed"):
            s.add_argument(
                "--backend",
                default="llamacpp",
                help="model.backend (auto picks by CPU: pinned so that a run resumed on another machine is not "
                "refused; the train sweep ran on hf in bf16, the dev arms on llamacpp)",
            )
        if name == "sweep":
            s.add_argument("--arms", action="store_true", help="the baselines and the tuned routing (else every route)")
        else:
            s.add_argument("--budget", type=float, default=0.6)
    args = p.parse_args()
    {"sweep": cmd_sweep, "tune": cmd_tune, "routed": cmd_routed, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
