"""Decode throughput at batch 1 vs batch 8 through gatedrag's controller (signals and gate included).

Every row writes exactly ``--tokens`` tokens: stop strings are off and the answer marker never
matches, so batch 1 and batch 8 do the same work. The gate computes all four signals on every
sentence and never fires (no retriever). For reference, plain ``model.generate()`` on a short
prompt is measured at batch 1 and 8 in the same run.

    python benchmarks/bench_throughput.py [--tokens 48] [--questions 8]
"""

from __future__ import annotations

import argparse
import time

from common import DATA, save


def rate(seconds: float, tokens: int) -> dict:
    return {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 2)}


def speedup(result: dict, name: str) -> float:
    return round(result[f"{name}_batch8"]["tokens_per_s"] / result[f"{name}_batch1"]["tokens_per_s"], 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = ap.parse_args()

    import torch

    from gatedrag.config import (
        DecodingConfig,
        EntropyRule,
        FlareRule,
        GateConfig,
        GNLLRule,
        ModelConfig,
        PipelineConfig,
        TokenRAGRule,
    )
    from gatedrag.evals.datasets import load_dataset
    from gatedrag.lm.hf import HFLanguageModel
    from gatedrag.pipeline import GatedRAG

    lm = HFLanguageModel.load(ModelConfig(name=args.model))
    questions = [e.question for e in load_dataset("hotpotqa", DATA, limit=args.questions)]
    result: dict = {"model": args.model, "tokens_per_row": args.tokens, "questions": len(questions)}
    for batch in (1, 8):
        cfg = PipelineConfig(
            gate=GateConfig(rules=[TokenRAGRule(act=False), FlareRule(act=False), GNLLRule(), EntropyRule()]),
            decoding=DecodingConfig(
                max_answer_tokens=args.tokens, stop_strings=(), answer_marker="\x00never", batch_size=batch
            ),
        )
        rag = GatedRAG(lm, None, cfg)
        rag.ask("warm-up: what is the capital of France?")  # encodes the shared few-shot prefix once
        t0 = time.perf_counter()
        answers = rag.batch(questions)
        dt = time.perf_counter() - t0
        tokens = sum(a.counts.generated_tokens for a in answers)
        result[f"controller_batch{batch}"] = rate(dt, tokens)
    result["controller_speedup"] = speedup(result, "controller")

    tok = lm.tokenizer
    tok.padding_side = "left"
    short = [f"Question: {q}\nAnswer:" for q in questions]
    for batch in (1, 8):
        t0 = time.perf_counter()
        made = 0
        for lo in range(0, len(short), batch):
            enc = tok(short[lo : lo + batch], return_tensors="pt", padding=True)
            with torch.inference_mode():
                seq = lm.model.generate(
                    **enc,
                    max_new_tokens=args.tokens,
                    min_new_tokens=args.tokens,
                    do_sample=False,
                    pad_token_id=lm.pad_id,
                )
            made += (seq.shape[1] - enc["input_ids"].shape[1]) * seq.shape[0]
        dt = time.perf_counter() - t0
        result[f"plain_generate_batch{batch}"] = rate(dt, made)
    result["plain_generate_speedup"] = speedup(result, "plain_generate")
    save("throughput", result)


if __name__ == "__main__":
    main()
