"""Recall of the gold supporting passages for BM25, dense (MiniLM + FAISS) and hybrid (RRF)
retrieval, with the question as query and with the queries the default gate sent (committed
evaluation records), on HotpotQA, 2WikiMultihopQA and MuSiQue. No language model is needed.

Questions are split as the evaluations use them: ``eval`` = the first 100 (measured, never tuned
on), ``spare`` = the rest of the file (HotpotQA 682, 2Wiki 154; MuSiQue has none). Fusion
settings are chosen on ``spare``.

python benchmarks/bench_recall.py [--datasets hotpotqa,2wikimultihopqa,musique] [--weights 0.5,1,2]
    -> benchmarks/results/retrieval/recall.json and a markdown table on stdout
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, machine

RECORDS = Path(__file__).resolve().parent / "results" / "eval"
OUT = Path(__file__).resolve().parent / "results" / "retrieval"
KS = (3, 10)


def gate_queries(dataset: str, method: str = "gated") -> list[tuple[str, str]]:
    """(question id, query) of every retrieval a doubtful sentence triggered in the records."""
    from gatedrag.evals.runner import read_records

    path = RECORDS / dataset / f"{method}.jsonl"
    if not path.is_file():
        return []
    return [
        (r.id, s.query)
        for r in read_records(path)
        for s in r.steps
        if s.kind == "retrieval" and s.query and (s.trigger or "").startswith("sentence")
    ]


def measure(retriever, queries: list[str], golds: list[list[str]]) -> dict[str, float]:
    from gatedrag.evals.gold import recall

    t0 = time.perf_counter()
    hits = retriever.retrieve(queries, max(KS))
    seconds = time.perf_counter() - t0
    out: dict[str, float] = {"queries": len(queries), "ms_per_query": round(1000 * seconds / max(1, len(queries)), 2)}
    for k in KS:
        pairs = [recall(h, g, k) for h, g in zip(hits, golds)]
        out[f"recall@{k}"] = round(sum(f for f, _ in pairs) / max(1, len(pairs)), 3)
        out[f"any@{k}"] = round(sum(a for _, a in pairs) / max(1, len(pairs)), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="hotpotqa,2wikimultihopqa,musique")
    ap.add_argument("--weights", default="0.5,1,2", help="dense weights of the hybrid tried (BM25's is 1)")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads while embedding")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from gatedrag.config import RetrievalConfig
    from gatedrag.evals.datasets import corpus_path, load_dataset
    from gatedrag.evals.gold import GoldPassages
    from gatedrag.retrieval.embed import MiniLMEmbedder
    from gatedrag.retrieval.factory import build_retriever
    from gatedrag.retrieval.hybrid import HybridRetriever

    embedder = MiniLMEmbedder()
    result: dict = {"machine": machine(), "embedder": embedder.name, "depth": args.depth, "datasets": {}}
    for dataset in args.datasets.split(","):
        corpus = corpus_path(dataset, DATA)
        t0 = time.perf_counter()
        bm25 = build_retriever(RetrievalConfig(corpus=corpus, backend="bm25s"))
        dense = build_retriever(RetrievalConfig(corpus=corpus, backend="dense"), embedder=embedder)
        build_s = time.perf_counter() - t0
        retrievers = {"bm25": bm25, "dense": dense}
        for w in [float(x) for x in args.weights.split(",")]:
            retrievers[f"hybrid w={w:g}"] = HybridRetriever([bm25, dense], depth=args.depth, weights=[1.0, w])
        gold = GoldPassages(bm25.passages)
        examples = load_dataset(dataset, DATA)
        by_id = {e.id: e for e in examples}
        splits = {"eval": examples[:100], "spare": examples[100:]}
        rows: dict = {}
        for split, exs in splits.items():
            exs = [e for e in exs if gold.ids(e)]
            if not exs:
                continue
            golds = [gold.ids(e) for e in exs]
            rows[f"question ({split}, {len(exs)} q)"] = {
                name: measure(r, [e.question for e in exs], golds) for name, r in retrievers.items()
            }
        sent = [(qid, q) for qid, q in gate_queries(dataset) if qid in by_id and gold.ids(by_id[qid])]
        if sent:
            golds = [gold.ids(by_id[qid]) for qid, _ in sent]
            rows[f"gate query (eval, {len(sent)} retrievals)"] = {
                name: measure(r, [q for _, q in sent], golds) for name, r in retrievers.items()
            }
            rows[f"question + gate query (eval, {len(sent)} retrievals)"] = {
                name: measure(r, [f"{by_id[qid].question} {q}" for qid, q in sent], golds)
                for name, r in retrievers.items()
            }
        result["datasets"][dataset] = {"passages": len(bm25.passages), "index_seconds": round(build_s, 1), "rows": rows}
        print(f"\n### {dataset} ({len(bm25.passages)} passages; indexes ready in {build_s:.0f} s)\n")
        names = list(retrievers)
        print("| queries | " + " | ".join(f"{n} R@3 / any@3 / R@10" for n in names) + " |")
        print("|---|" + "---|" * len(names))
        for label, by_name in rows.items():
            cells = [f"{m['recall@3']:.3f} / {m['any@3']:.3f} / {m['recall@10']:.3f}" for m in by_name.values()]
            print(f"| {label} | " + " | ".join(cells) + " |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "recall.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
