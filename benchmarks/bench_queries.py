"""What a gate's retrievals would have found with another query: replays every retrieval that a
doubtful sentence triggered in committed evaluation records (no model needed), with the recorded
masked-sentence query and with the alternatives gatedrag offers, through the same BM25 top-k, and
counts how often the top-k holds a supporting passage of the question (gold titles of HotpotQA's
``supporting_facts`` / 2Wiki's), and how often one that the prompt did not already show.

python benchmarks/bench_queries.py --dataset hotpotqa --methods gated,token-rag [--records DIR] [--top-k 3]
"""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path

from common import DATA, save

WORD = re.compile(r"\S+")


def whole_words(sentence: str, masked_query: str) -> str:
    """The sentence's words whose every character survives in its token-masked query: masking by
    word instead of by sub-word token (the query then holds no word fragments)."""
    kept: set[int] = set()
    for block in difflib.SequenceMatcher(None, sentence, masked_query, autojunk=False).get_matching_blocks():
        kept.update(range(block.a, block.a + block.size))
    return " ".join(m.group() for m in WORD.finditer(sentence) if all(i in kept for i in range(m.start(), m.end())))


def variants(question: str, previous: str, sentence: str, masked: str) -> dict[str, str]:
    """The query formulations compared (config settings in brackets)."""
    return {
        "masked sentence (default)": masked,
        "question + masked (query_with_question)": f"{question} {masked}",
        "previous + masked (query_with_previous: 1)": f"{previous} {masked}".strip(),
        "question alone (SR-RAG's query)": question,
        "masked by whole words": whole_words(sentence, masked) or question,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="hotpotqa", choices=["hotpotqa", "2wikimultihopqa"])
    ap.add_argument("--methods", default="gated,token-rag")
    ap.add_argument("--records", type=Path, default=Path(__file__).resolve().parent / "results" / "eval")
    ap.add_argument("--top-k", type=int, default=3)
    args = ap.parse_args()

    from gatedrag.config import RetrievalConfig
    from gatedrag.evals.datasets import corpus_path, load_dataset
    from gatedrag.evals.runner import read_records
    from gatedrag.retrieval.factory import build_retriever

    gold = {e.id: {t for t, _ in e.fields.get("supporting_facts") or []} for e in load_dataset(args.dataset, DATA)}
    retriever = build_retriever(RetrievalConfig(corpus=corpus_path(args.dataset, DATA)))
    result: dict[str, object] = {"dataset": args.dataset, "top_k": args.top_k, "methods": {}}
    for method in args.methods.split(","):
        records = read_records(args.records / args.dataset / f"{method}.jsonl")
        found: dict[str, int] = {}
        new: dict[str, int] = {}
        n = reproduced = 0
        for r in records:
            support = gold.get(r.id, set())
            shown: set[str] = set()
            titles_by_id: dict[str, str] = {}
            accepted: list[str] = []
            doubtful = None
            for step in r.steps:
                if step.kind == "sentence":
                    doubtful = step
                    if step.accepted:
                        accepted.append(step.text)
                    continue
                if step.kind != "retrieval":
                    continue
                from_sentence = (step.trigger or "").startswith("sentence") and doubtful is not None
                if from_sentence and step.query and r.question not in step.query:
                    queries = variants(r.question, accepted[-1] if accepted else "", doubtful.text, step.query)
                    hits = retriever.retrieve(list(queries.values()), args.top_k)
                    titles = [{h.passage.title for h in row} for row in hits]
                    reproduced += titles[0] == {p.title for p in step.passages}
                    for name, got in zip(queries, titles):
                        found[name] = found.get(name, 0) + bool(support & got)
                        new[name] = new.get(name, 0) + bool((support & got) - shown)
                    n += 1
                titles_by_id.update({p.id: p.title for p in step.passages})
                shown = {p.title for p in step.passages} | {titles_by_id.get(i, i) for i in step.carried}
        result["methods"][method] = {
            "questions": len(records),
            "retrievals_replayed": n,
            "recorded_passages_reproduced": reproduced,
            "support_found": {k: round(v / max(1, n), 3) for k, v in found.items()},
            "new_support_found": {k: round(v / max(1, n), 3) for k, v in new.items()},
        }
    save(f"queries_{args.dataset}", result)


if __name__ == "__main__":
    main()
