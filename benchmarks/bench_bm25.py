"""bm25s vs rank-bm25: index build time and query latency on the benchmark corpora.

python benchmarks/bench_bm25.py [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import DATA, save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.retrieval.corpus import load_corpus
    from gatedrag.retrieval.rank_bm25 import RankBM25Retriever
    from gatedrag.types import Passage

    questions = [q["question"] for q in json.loads((DATA / "hotpotqa" / "dev.json").read_text())][: args.queries]
    hotpot = load_corpus(DATA / "hotpotqa" / "corpus.jsonl")
    pooled: list[Passage] = []
    for name in ("hotpotqa", "2wikimultihopqa", "musique", "popqa"):
        pooled += [p.model_copy(update={"id": f"{name}:{p.id}"}) for p in load_corpus(DATA / name / "corpus.jsonl")]
    result: dict = {"queries": len(questions)}
    for label, passages in (("hotpotqa", hotpot), ("pooled", pooled)):
        row: dict = {"passages": len(passages)}
        for backend, build in (("bm25s", BM25Retriever.build), ("rank_bm25", RankBM25Retriever)):
            t0 = time.perf_counter()
            r = build(passages)
            built = time.perf_counter() - t0
            singles = []
            for q in questions[:50]:
                t = time.perf_counter()
                r.retrieve([q], k=3)
                singles.append(time.perf_counter() - t)
            t = time.perf_counter()
            r.retrieve(questions, k=3)
            batched = time.perf_counter() - t
            row[backend] = {
                "build_s": round(built, 2),
                "single_query_ms_p50": round(1000 * statistics.median(singles), 2),
                "batched_ms_per_query": round(1000 * batched / len(questions), 2),
            }
        row["single_query_speedup"] = round(
            row["rank_bm25"]["single_query_ms_p50"] / row["bm25s"]["single_query_ms_p50"], 1
        )
        result[label] = row
    save("bm25", result)


if __name__ == "__main__":
    main()
