"""End-to-end seconds per question on HotpotQA dev questions: closed-book vs gated methods.

Same model, same questions (the first ``--limit`` of ``hotpotqa/dev.json``), BM25 top-3 over the
pooled HotpotQA corpus, batch 8. Reports s/q, retrievals/q, LLM calls/q, tokens/q, EM and F1.

    python benchmarks/bench_e2e.py [--limit 20] [--start 0] [--methods closed,gated,flare]
"""

from __future__ import annotations

import argparse
import time

from common import DATA, save

METHODS = {
    "closed": {"retriever": False},
    "gated": {},  # the default gate: TokenRAG mean(1-p) > 0.1
    "flare": {"gate": {"rules": [{"signal": "flare", "theta": 0.8, "beta": 0.4}]}},
    "single": {"retriever": True, "gate": {"rules": []}, "policy": {"retrieve_first": True}},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--start", type=int, default=0, help="skip this many questions first")
    ap.add_argument("--methods", default="closed,gated")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = ap.parse_args()

    from gatedrag.config import ModelConfig, parse_config
    from gatedrag.evals.datasets import corpus_path, load_dataset
    from gatedrag.evals.metrics import exact_match, f1
    from gatedrag.lm.hf import HFLanguageModel
    from gatedrag.pipeline import GatedRAG
    from gatedrag.retrieval.bm25 import BM25Retriever

    lm = HFLanguageModel.load(ModelConfig(name=args.model))
    retriever = BM25Retriever.from_corpus(corpus_path("hotpotqa", DATA))
    examples = load_dataset("hotpotqa", DATA, limit=args.start + args.limit)[args.start :]
    result: dict = {
        "model": args.model,
        "questions": len(examples),
        "first_question": args.start,
        "corpus": "hotpotqa/corpus.jsonl (7,607)",
    }
    for name in args.methods.split(","):
        spec = dict(METHODS[name])
        use_retriever = spec.pop("retriever", True)
        rag = GatedRAG(lm, retriever if use_retriever else None, parse_config(spec))
        t0 = time.perf_counter()
        answers = rag.batch([e.question for e in examples])
        dt = time.perf_counter() - t0
        n = len(answers)
        result[name] = {
            "config": spec,
            "seconds_per_question": round(dt / n, 2),
            "retrievals_per_question": round(sum(a.counts.retrievals for a in answers) / n, 2),
            "llm_calls_per_question": round(sum(a.counts.llm_calls for a in answers) / n, 2),
            "generated_tokens_per_question": round(sum(a.counts.generated_tokens for a in answers) / n, 1),
            "em": round(sum(exact_match(a.answer, e.answers) for a, e in zip(answers, examples)) / n, 3),
            "f1": round(sum(f1(a.answer, e.answers) for a, e in zip(answers, examples)) / n, 3),
            "answers": [a.answer for a in answers],
        }
        print(name, {k: v for k, v in result[name].items() if k != "answers"}, flush=True)
    save(f"e2e-hotpotqa-{args.start}-{args.start + args.limit}", result)


if __name__ == "__main__":
    main()
