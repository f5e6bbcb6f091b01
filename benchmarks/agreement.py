"""How often two evaluation runs (e.g. two model backends) give the same answer, question by question.

    python benchmarks/agreement.py benchmarks/results/eval benchmarks/results/llamacpp \\
        --dataset hotpotqa --methods no-rag,sr-rag --limit 40

For each method: the questions both runs answered (the first LIMIT in file order), how many have
the same final text and the same short answer, EM of each, and every question whose short answer
differs with both answers and the first sentence where the two texts part.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parting(a: str, b: str) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"...{a[max(0, i - 40) : i + 40]!r} vs ...{b[max(0, i - 40) : i + 40]!r}"
    return "one text is a prefix of the other"


def compare(a_dir: Path, b_dir: Path, dataset: str, method: str, limit: int | None) -> dict:
    a = {r["id"]: r for r in _records(a_dir / dataset / f"{method}.jsonl")}
    b_list = _records(b_dir / dataset / f"{method}.jsonl")
    ids = [r["id"] for r in b_list if r["id"] in a][:limit]
    b = {r["id"]: r for r in b_list}
    same_text = sum(a[i]["text"] == b[i]["text"] for i in ids)
    same_answer = [i for i in ids if a[i]["prediction"].strip().lower() == b[i]["prediction"].strip().lower()]
    differing = [
        {
            "id": i,
            "question": a[i]["question"],
            "a": a[i]["prediction"],
            "b": b[i]["prediction"],
            "em": [a[i]["em"], b[i]["em"]],
            "parting": _parting(a[i]["text"], b[i]["text"]),
        }
        for i in ids
        if i not in same_answer
    ]
    n = max(1, len(ids))
    return {
        "method": method,
        "questions": len(ids),
        "same_text": same_text,
        "same_answer": len(same_answer),
        "em_a": round(sum(a[i]["em"] for i in ids) / n, 3),
        "em_b": round(sum(b[i]["em"] for i in ids) / n, 3),
        "differing": differing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--dataset", default="hotpotqa")
    ap.add_argument("--methods", default="no-rag,sr-rag")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", type=Path, help="also write the comparison here")
    args = ap.parse_args()
    results = [compare(args.a, args.b, args.dataset, m, args.limit) for m in args.methods.split(",") if m]
    print(f"| method | questions | same text | same short answer | EM {args.a.name} | EM {args.b.name} |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['method']} | {r['questions']} | {r['same_text']} | {r['same_answer']} "
            f"({r['same_answer'] / max(1, r['questions']):.0%}) | {r['em_a']:.3f} | {r['em_b']:.3f} |"
        )
    for r in results:
        for d in r["differing"]:
            print(
                f"- {r['method']} {d['id']}: {d['a']!r} (EM {d['em'][0]}) vs {d['b']!r} (EM {d['em'][1]}); {d['parting']}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
