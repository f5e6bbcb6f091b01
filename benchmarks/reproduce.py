"""Do the committed evaluation records still reproduce? (issue 15's acceptance check)

Re-runs every method of the committed grid on the first questions of HotpotQA and 2Wiki (batches
of 8, as committed) with the code of this checkout, and optionally with another commit of the
code (a git worktree sharing this venv's packages), then compares the predictions question by
question: new vs the committed records, and new vs that commit on the same machine and dtype.

    python benchmarks/reproduce.py --limit 24                      # this checkout vs the records
    python benchmarks/reproduce.py --limit 24 --baseline f275a1e   # ... and vs commit f275a1e here
    python benchmarks/reproduce.py --new 28b8647 --baseline f275a1e   # both from worktrees (edit freely meanwhile)
    python benchmarks/reproduce.py --compare-only                  # tables from what is already run

Runs are resumable (``gatedrag eval`` records per question); the comparison is written to
``OUT/report.md`` with every differing question, both predictions and the first trace step where
the two runs part. Greedy decoding of the same prompts gives the same tokens, so a difference is
either a behaviour change or (against records decoded on another CPU) a bf16/float32 tie.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "eval"
METHODS = "no-rag,sr-rag,fl-rag,fs-rag,flare,token-rag,dragin,quco-rag,gated-corpus,sr-rag-ck,gated"
DATASETS = {"hotpotqa": METHODS, "2wikimultihopqa": METHODS.replace("sr-rag-ck,", "")}
"""sr-rag-ck was committed for HotpotQA only."""


def _records(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["id"]] = rec
    return out


def _first_difference(a: dict, b: dict) -> str:
    """Where two records of one question part: the first trace step whose text, query or decision differs."""
    for i, (sa, sb) in enumerate(zip(a.get("steps", []), b.get("steps", []))):
        for key in ("kind", "text", "query", "accepted"):
            if sa.get(key) != sb.get(key):
                return f"step {i} {key}: {sa.get(key)!r} vs {sb.get(key)!r}"
        da, db = (sa.get("decision") or {}).get("action"), (sb.get("decision") or {}).get("action")
        if da != db:
            return f"step {i} decision: {da} vs {db}"
    na, nb = len(a.get("steps", [])), len(b.get("steps", []))
    return f"steps {na} vs {nb}" if na != nb else "same steps, different answer text"


def _venv_for(worktree: Path) -> Path:
    """A venv for the worktree that sees this venv's packages and installs only the worktree's code."""
    venv = worktree / ".venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
        ours = next((venv / "lib").glob("python*/site-packages"))
        (ours / "_shared_packages.pth").write_text(site + "\n", encoding="utf-8")
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(worktree)],
            check=True,
        )
    return venv


def _worktree(rev: str) -> Path:
    worktree = ROOT / ".bench" / f"worktree-{rev}"
    if not worktree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), rev], cwd=ROOT, check=True)
    return worktree


def _methods(dataset: str, only: set[str] | None) -> str:
    """The committed methods of ``dataset`` (those of ``only`` when given)."""
    return ",".join(m for m in DATASETS[dataset].split(",") if only is None or m in only)


def _run(
    venv_bin: Path, cwd: Path, out: Path, limit: int, device: str, datasets: list[str], only: set[str] | None
) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    for dataset in datasets:
        methods = _methods(dataset, only)
        cmd = [
            str(venv_bin / "gatedrag"),
            "eval",
            "--dataset",
            dataset,
            "--methods",
            methods,
            "--limit",
            str(limit),
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--device",
            device,
            "--data",
            str(ROOT.parent / "shared" / "data"),
        ]
        print("$", " ".join(cmd), f"(in {cwd})", flush=True)
        subprocess.run(cmd, cwd=cwd, env=env, check=True)


def _compare(
    a_dir: Path, b_dir: Path, limit: int, a_name: str, b_name: str, *, need_all: bool, only: set[str] | None = None
) -> tuple[list[str], list[str]]:
    """Per method: questions compared, same prediction, same answer text, and whether that is enough
    (every question on the same machine; 23 of 24 against records decoded elsewhere)."""
    rows, diffs = [], []
    for dataset in DATASETS:
        for method in filter(None, _methods(dataset, only).split(",")):
            a = _records(a_dir / dataset / f"{method}.jsonl")
            b = _records(b_dir / dataset / f"{method}.jsonl")
            ids = [i for i in list(b)[:limit] if i in a]
            same = [i for i in ids if a[i]["prediction"] == b[i]["prediction"]]
            traces = [i for i in ids if a[i]["text"] == b[i]["text"]]
            enough = len(ids) if need_all else len(ids) - max(1, len(ids) // 24)
            ok = "not run yet" if not ids else "yes" if len(same) >= enough else "NO"
            rows.append(f"| {dataset} | {method} | {len(ids)} | {len(same)} | {len(traces)} | {ok} |")
            for i in ids:
                if a[i]["prediction"] != b[i]["prediction"] or a[i]["text"] != b[i]["text"]:
                    what = "prediction" if a[i]["prediction"] != b[i]["prediction"] else "text only"
                    diffs.append(
                        f"- {dataset} / {method} / `{i}` ({what}): {a_name} {a[i]['prediction']!r} vs "
                        f"{b_name} {b[i]['prediction']!r}; {_first_difference(a[i], b[i])}"
                    )
    return rows, diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--out", type=Path, default=ROOT / ".bench" / "reproduce")
    ap.add_argument("--baseline", help="another commit to run on this machine (a git worktree)")
    ap.add_argument("--new", help="run the new code from this commit (a git worktree) instead of the checkout")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated, in the order run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compare-only", action="store_true")
    ap.add_argument("--methods", help="comma-separated: only these of the committed methods (default: all)")
    ap.add_argument("--skip-new", action="store_true", help="run only the baseline commit")
    args = ap.parse_args()
    args.out = args.out.resolve()  # the runs execute inside worktrees: a relative path would land there
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    new_dir = args.out / (f"new-{args.new}" if args.new else "new")
    base_dir = args.out / f"base-{args.baseline}" if args.baseline else None
    datasets = [d for d in args.datasets.split(",") if d]
    only = {m for m in args.methods.split(",") if m} if args.methods else None
    if not args.compare_only:
        for dataset in datasets:  # one dataset at a time, both codes: a cut-off run still compares something
            if base_dir is not None:
                worktree = _worktree(args.baseline)
                _run(_venv_for(worktree) / "bin", worktree, base_dir, args.limit, args.device, [dataset], only)
            if args.skip_new:
                continue
            if args.new:
                worktree = _worktree(args.new)
                _run(_venv_for(worktree) / "bin", worktree, new_dir, args.limit, args.device, [dataset], only)
            else:
                _run(Path(sys.executable).parent, ROOT, new_dir, args.limit, args.device, [dataset], only)
    code = f"commit {args.new}" if args.new else f"checkout at {head}"
    lines = [f"# Reproduction check (new code: {code}; first {args.limit} questions per dataset)", ""]
    header = [
        "| dataset | method | questions | same prediction | same answer text | enough |",
        "|---|---|---:|---:|---:|---|",
    ]
    pairs = [("committed records", RECORDS, "records", False), (f"commit {args.baseline} here", base_dir, "base", True)]
    for title, ref, short, need_all in pairs:
        if ref is None or not ref.exists() or not new_dir.exists():
            continue
        rows, diffs = _compare(new_dir, ref, args.limit, "new", short, need_all=need_all, only=only)
        lines += [
            f"## New code vs {title}",
            "",
            *header,
            *rows,
            "",
            "Differences:" if diffs else "No differences.",
            *diffs,
            "",
        ]
    report = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
