"""Answer selection and the combined score on questions not used for fitting (issue 17).

Reads the records of ``gated-select`` (first N dev questions) and the combiner fitted by
``gatedrag tune --combiner`` on spare questions, re-scores every recorded candidate with it
(:func:`gatedrag.evals.combining.selection_report`) and prints EM of each choice, AUROC of a wrong
answer and ECE of the confidence, beside the best single signal's AUROC on the same records.

    python benchmarks/issue17_selection.py benchmarks/results/issue17/bm25/hotpotqa/gated-select.jsonl \\
        --combiner benchmarks/results/issue17/combiner/combiner.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gatedrag.evals.calibration import auroc
from gatedrag.evals.combining import selection_report
from gatedrag.evals.runner import QuestionRecord
from gatedrag.gate.combiner import Combiner


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("records", type=Path)
    ap.add_argument("--combiner", type=Path, action="append", default=[])
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    records = [
        QuestionRecord.model_validate_json(line) for line in args.records.read_text().splitlines() if line.strip()
    ]
    records = records[: args.limit] if args.limit else records
    combiners = {p.parent.name or p.stem: Combiner.load(p) for p in args.combiner}
    report = selection_report(records, combiners)
    wrong = [r.em < 1 for r in records]
    single = {}
    for name in sorted({n for r in records for n in r.signals}):
        values = [max(r.signals.get(name) or [0.0]) for r in records]
        a = auroc(values, wrong)
        if a is not None:
            single[name] = round(a, 3)
    single["1 - confidence"] = auroc([1 - r.confidence for r in records], wrong)
    out = report.model_dump() | {
        "single_signal_auroc_wrong": single,
        "fitted": {k: c.fitted for k, c in combiners.items()},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
