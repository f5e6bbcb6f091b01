"""Monitor overhead: gated decoding with a gate that never fires vs plain greedy generate().

Both decode the same prompt to the same number of new tokens with the same model; the gated run
computes every token's log-probability, entropy and top-5 alternatives, cuts sentences and runs
all four signals and the gate on each sentence. Reported: median wall time of each, overhead %.

    python benchmarks/bench_overhead.py [--tokens 64] [--reps 3] [--model qwen2.5-coder-1.5b-instruct]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = ap.parse_args()

    import torch

    from gatedrag.config import EntropyRule, FlareRule, GateConfig, GNLLRule, ModelConfig, TokenRAGRule
    from gatedrag.gate import Gate
    from gatedrag.lm.hf import HFLanguageModel
    from gatedrag.prompts import PromptTemplate

    lm = HFLanguageModel.load(ModelConfig(name=args.model))
    gate = Gate(GateConfig(rules=[TokenRAGRule(act=False), FlareRule(act=False), GNLLRule(), EntropyRule()]))
    _, prompt = PromptTemplate.load("cot").render(
        "Which magazine was started first, Arthur's Magazine or First for Women?"
    )
    prompt_ids = lm.encode(prompt, special=True)
    sentences = 0

    def hook(key, sentence):
        nonlocal sentences
        sentences += 1
        gate.evaluate(sentence.tokens)
        return "continue"

    def gated() -> tuple[float, list[int]]:
        s = lm.open_session()
        s.start(0, prompt)
        t0 = time.perf_counter()
        out = s.decode([0], on_sentence=hook, budgets={0: args.tokens}, stop_strings=(), regroup=False)
        dt = time.perf_counter() - t0
        return dt, s.tokens(0)[len(prompt_ids) : len(prompt_ids) + out[0].new_tokens]

    def plain(n: int) -> tuple[float, list[int]]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            seq = lm.model.generate(
                torch.tensor([prompt_ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=lm.pad_id
            )
        return time.perf_counter() - t0, seq[0, len(prompt_ids) :].tolist()

    gated()  # warm-up
    g_times, p_times = [], []
    for _ in range(args.reps):
        gt, g_tokens = gated()
        pt, p_tokens = plain(len(g_tokens))
        g_times.append(gt)
        p_times.append(pt)
    g, p = statistics.median(g_times), statistics.median(p_times)
    save(
        "overhead",
        {
            "model": args.model,
            "prompt_tokens": len(prompt_ids),
            "new_tokens": len(g_tokens),
            "same_tokens": g_tokens == p_tokens,
            "sentences_scored_per_run": sentences // (args.reps + 1),
            "gated_s": g_times,
            "plain_generate_s": p_times,
            "gated_median_s": round(g, 3),
            "plain_median_s": round(p, 3),
            "overhead_pct": round(100 * (g - p) / p, 2),
        },
    )


if __name__ == "__main__":
    main()
