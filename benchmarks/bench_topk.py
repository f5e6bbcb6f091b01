"""How far each token signal moves when a backend returns only the top-k log-probabilities.

Answers the first dev questions of a dataset with a method's config and the full-distribution
backend (keeping the top-20 alternatives of every step), records every sentence the gate saw, and
computes every token signal twice on the same tokens: from the full distribution, and from what an
OpenAI-compatible server returns (the chosen token's log-probability and the top-k, entropy by
:func:`gatedrag.lm.topk.topk_entropy`). Reported per signal: mean and largest absolute change,
Spearman rank correlation over sentences, and the share of sentences whose fired/not-fired verdict
changes at the listed thresholds. RIND is computed with the model's attention both times (only
the entropy differs), to show what the estimate alone does to it.

    python benchmarks/bench_topk.py --dataset hotpotqa --method gated --limit 16 --k 20
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Hashable, Sequence
from typing import Any

from common import DATA, save


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else 1.0


class Recording:
    """A language model that keeps every sentence its sessions hand to the sentence hook."""

    def __init__(self, inner: Any):
        self.inner, self.sentences = inner, []
        self.name, self.context_length, self.capabilities = inner.name, inner.context_length, inner.capabilities

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(ids)

    def attention(self, ids: Sequence[int]) -> Any:
        return self.inner.attention(ids)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def open_session(self) -> Any:
        session, kept = self.inner.open_session(), self.sentences

        class Session:
            def start(self, *a: Any, **kw: Any) -> int:
                return session.start(*a, **kw)

            def close(self, key: Hashable) -> None:
                session.close(key)

            def decode(self, keys: Any, *, on_sentence: Any, **kw: Any) -> Any:
                def hook(key: Hashable, s: Any) -> Any:
                    kept.append(s)
                    return on_sentence(key, s)

                return session.decode(keys, on_sentence=hook, **kw)

        return Session()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="hotpotqa")
    ap.add_argument("--method", default="gated")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = ap.parse_args()

    from gatedrag.config import ModelConfig, PipelineConfig
    from gatedrag.evals.baselines import method_config
    from gatedrag.evals.datasets import corpus_path, load_dataset
    from gatedrag.lm.hf import HFLanguageModel
    from gatedrag.lm.topk import only_top_k
    from gatedrag.pipeline import GatedRAG
    from gatedrag.prompts import PromptTemplate
    from gatedrag.retrieval.factory import build_retriever
    from gatedrag.signals import EntropySignal, FlareSignal, GNLLSignal, RINDSignal, SentenceContext, TokenRAGSignal

    base = PipelineConfig.model_validate({"model": {"name": args.model, "top_k": args.k}})
    cfg = method_config(args.method, args.dataset, base)
    cfg = cfg.model_copy(
        update={"retrieval": cfg.retrieval.model_copy(update={"corpus": corpus_path(args.dataset, DATA)})}
    )
    skip = PromptTemplate.load(cfg.prompt).source_ids
    questions = [e.question for e in load_dataset(args.dataset, DATA, limit=args.limit, skip=skip)]
    lm = Recording(HFLanguageModel.load(ModelConfig(name=args.model, top_k=args.k)))
    GatedRAG(lm, build_retriever(cfg.retrieval), cfg).batch(questions)

    signals = {
        "token_rag (mean 1-p > 0.1)": (TokenRAGSignal(), [0.1]),
        "flare (1 - min p)": (FlareSignal(), [0.2, 0.6]),
        "gnll (nats)": (GNLLSignal(), [3.0, 6.0]),
        "entropy max (nats)": (EntropySignal(aggregate="max"), [1.0, 2.0, 3.0]),
        "entropy mean (nats)": (EntropySignal(aggregate="mean"), [0.5, 1.0]),
        "rind (entropy x attention)": (RINDSignal(), [1.2, 1.3]),
    }
    rows = []
    for label, (signal, thresholds) in signals.items():
        full, top = [], []
        for s in lm.sentences:
            ctx = SentenceContext(model=lm.inner)  # RIND: the same attention, only the entropy differs
            full.append(signal.evaluate(s.tokens, ctx).value)
            top.append(signal.evaluate([only_top_k(t, args.k) for t in s.tokens], ctx).value)
        diffs = [abs(a - b) for a, b in zip(full, top)]
        flips = {t: sum((a > t) != (b > t) for a, b in zip(full, top)) / len(full) for t in thresholds}
        rows.append(
            {
                "signal": label,
                "sentences": len(full),
                "mean_full": statistics.fmean(full),
                "mean_abs_change": statistics.fmean(diffs),
                "max_abs_change": max(diffs),
                "spearman": spearman(full, top),
                "flips": flips,
            }
        )
    save("topk", {"args": vars(args), "rows": rows})
    print("| signal | sentences | mean (full) | mean abs change | max abs change | Spearman | verdict flips |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        flips = ", ".join(f"{t:g}: {f:.1%}" for t, f in r["flips"].items())
        print(
            f"| {r['signal']} | {r['sentences']} | {r['mean_full']:.3f} | {r['mean_abs_change']:.4f} | "
            f"{r['max_abs_change']:.4f} | {r['spearman']:.3f} | {flips} |"
        )


if __name__ == "__main__":
    main()
