"""CK-PLUG knowledge control with the default model.

python benchmarks/bench_control.py cost [--tokens 32]          # decode wall time, control on vs off, batch 1 and 8
python benchmarks/bench_control.py conflict [--limit 100]      # memory vs context recall per alpha / adaptive

cost: the same prompts (HotpotQA questions with 3 BM25 passages as context, the question alone as
the parametric prompt) decoded greedily for --tokens tokens with gatedrag.control.joint (both
branches in one forward pass) with control on, against plain RAG decoding of the context rows only
(model.generate-equivalent loop, half the rows); peak RSS from the OS.
conflict: the PopQA counterfactual set of gatedrag.evals.conflict.
"""

from __future__ import annotations

import argparse
import resource
import time

from common import DATA, save


def _load():
    from gatedrag.config import ModelConfig
    from gatedrag.lm.hf import HFLanguageModel

    return HFLanguageModel.load(ModelConfig())


def cost(args: argparse.Namespace) -> None:
    import json

    import torch

    from gatedrag.config import KnowledgeControlConfig
    from gatedrag.control.joint import generate_with_control
    from gatedrag.retrieval.bm25 import BM25Retriever

    lm = _load()
    questions = [q["question"] for q in json.loads((DATA / "hotpotqa" / "dev.json").read_text())][:8]
    retriever = BM25Retriever.from_corpus(DATA / "hotpotqa" / "corpus.jsonl")
    hits = retriever.retrieve(questions, 3)
    ctx = [
        "Background:\n" + "\n".join(h.passage.text for h in hs) + f"\n\nQuestion: {q}\nAnswer:"
        for q, hs in zip(questions, hits)
    ]
    par = [f"Question: {q}\nAnswer:" for q in questions]
    result: dict = {"tokens": args.tokens, "model": lm.name}
    # warm-up (first-call kernel selection and allocator growth would otherwise land on whichever runs first)
    generate_with_control(
        lm.model, lm.tokenizer, ctx[:2], par[:2], KnowledgeControlConfig(), max_new_tokens=2, eos_ids=[]
    )
    for b in (1, 8):
        row = {}
        for label, control in (("control", True), ("plain", False)):
            t0 = time.perf_counter()
            if control:
                generate_with_control(
                    lm.model,
                    lm.tokenizer,
                    ctx[:b],
                    par[:b],
                    KnowledgeControlConfig(adaptive=True),
                    max_new_tokens=args.tokens,
                    eos_ids=[],
                )
            else:  # plain RAG: the context rows alone, same loop shape
                from gatedrag.control.joint import _left_pad

                enc = [lm.tokenizer.encode(p, add_special_tokens=False) for p in ctx[:b]]
                ids, mask = _left_pad(enc, lm.pad_id)
                with torch.no_grad():
                    pos = (mask.cumsum(-1) - 1).clamp_min(0)
                    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
                    past, last = out.past_key_values, pos[:, -1:]
                    for _ in range(args.tokens):
                        nxt = out.logits[:, -1, :].argmax(-1)[:, None]
                        mask = torch.cat([mask, torch.ones_like(nxt)], -1)
                        last = last + 1
                        out = lm.model(
                            input_ids=nxt, attention_mask=mask, position_ids=last, past_key_values=past, use_cache=True
                        )
                        past = out.past_key_values
            row[f"{label}_s"] = round(time.perf_counter() - t0, 2)
        row["ratio"] = round(row["control_s"] / row["plain_s"], 2)
        result[f"batch_{b}"] = row
        print(b, row, flush=True)
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    save("control_cost", result)


def conflict(args: argparse.Namespace) -> None:
    from gatedrag.config import KnowledgeControlConfig
    from gatedrag.evals.conflict import CLOSED_BOOK, build_conflict_set, evaluate_control, summarize_conflict

    lm = _load()
    examples = build_conflict_set(DATA, limit=args.limit, order=args.order)
    settings: dict = {"closed_book": CLOSED_BOOK, "plain_rag": None}
    for a in (0.0, 0.25, 0.5, 0.75, 1.0):
        settings[f"alpha_{a}"] = KnowledgeControlConfig(alpha=a, epsilon=args.epsilon)
    settings["adaptive"] = KnowledgeControlConfig(adaptive=True, epsilon=args.epsilon)
    result = evaluate_control(
        lm,
        examples,
        settings,
        batch_size=args.batch_size,
        progress=lambda n, d, t: print(n, d, t, flush=True),
        out=args.out or None,
    )
    if args.out:  # with the closed-book setting: recall on the facts the model knows
        result = summarize_conflict(args.out, examples)
    save(
        f"control_conflict_{args.order}",
        {"examples": len(examples), "order": args.order, "epsilon": args.epsilon, "model": lm.name, "results": result},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["cost", "conflict"])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--order", choices=["file", "popularity"], default="file", help="conflict: which PopQA questions first"
    )
    ap.add_argument(
        "--out",
        default="",
        help="conflict: JSONL of per-example predictions; an interrupted sweep resumes from it",
    )
    args = ap.parse_args()
    cost(args) if args.what == "cost" else conflict(args)


if __name__ == "__main__":
    main()
