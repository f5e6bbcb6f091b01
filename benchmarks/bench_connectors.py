"""Connectors and server, side by side on one model in one run (issue 18):

1. the LangChain Runnable's overhead over the direct API (the same questions, greedy: the same answers);
2. time to the first streamed sentence: ``GatedRAG.stream``, the Runnable's ``stream``, ``gatedrag
   serve``'s streamed chat completion;
3. ``gatedrag serve`` aggregate tokens/s with 1 and 8 concurrent clients against in-process
   completion at batch 1 and batch 8.

    HF_HUB_OFFLINE=1 python benchmarks/bench_connectors.py --questions 4 --out benchmarks/results/connectors.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import time
from pathlib import Path

import httpx

from gatedrag.config import PipelineConfig
from gatedrag.connectors.langchain import GatedRAGRunnable
from gatedrag.evals.datasets import corpus_path, load_dataset
from gatedrag.events import SentenceAccepted
from gatedrag.lm.chat import complete
from gatedrag.pipeline import GatedRAG
from gatedrag.serve.app import create_app
from gatedrag.serve.background import serving


def throughput(rag: GatedRAG, qs: list[str], tokens: int) -> dict:
    """Aggregate new tokens/s: the server with 1 and 8 concurrent clients, in-process batch 1 and 8."""
    prompts = [f"Question: {q}\nAnswer:" for q in (qs * 8)[:8]]
    app = create_app(rag.lm, model_name="m")
    with serving(app) as url:

        def served(p: str) -> int:
            body = {"model": "m", "prompt": p, "max_tokens": tokens, "temperature": 0}
            return httpx.post(f"{url}/completions", json=body, timeout=600).json()["usage"]["completion_tokens"]

        t = time.perf_counter()
        n = sum(served(p) for p in prompts)
        one = n / (time.perf_counter() - t)
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            n = sum(pool.map(served, prompts))
        eight = n / (time.perf_counter() - t)
        batches = list(app.state.engine.batches)
    t = time.perf_counter()
    n = sum(len(complete(rag.lm, [p], max_tokens=tokens)[0].tokens) for p in prompts)
    b1 = n / (time.perf_counter() - t)
    t = time.perf_counter()
    n = sum(len(c.tokens) for c in complete(rag.lm, prompts, max_tokens=tokens))
    b8 = n / (time.perf_counter() - t)
    return {
        "serve, 1 client": round(one, 2),
        "serve, 8 clients": round(eight, 2),
        "in-process, batch 1": round(b1, 2),
        "in-process, batch 8": round(b8, 2),
        "server batch sizes (1 client, then 8)": batches,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--tokens", type=int, default=48, help="new tokens a completion (throughput)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/connectors.json"))
    ap.add_argument("--only-throughput", action="store_true", help="part 3 only (merged into --out)")
    args = ap.parse_args()

    examples = load_dataset("hotpotqa", args.data, limit=args.questions)
    cfg = PipelineConfig.model_validate({"retrieval": {"corpus": str(corpus_path("hotpotqa", args.data))}})
    rag = GatedRAG.from_config(cfg)
    runnable = GatedRAGRunnable.from_rag(rag)
    qs = [e.question for e in examples]
    rag.ask(qs[0])  # warm-up (caches, first-call costs)
    if args.only_throughput:
        out = json.loads(args.out.read_text())
        out["tokens_per_s"] = throughput(rag, qs, args.tokens)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps(out["tokens_per_s"], indent=2))
        return
    out: dict = {
        "model": rag.lm.name,
        "backend": rag.config.model.backend,
        "questions": len(qs),
        "machine": platform.processor() or platform.machine(),
    }

    # 1. overhead
    direct, wrapped, same = [], [], 0
    for q in qs:
        t = time.perf_counter()
        a = rag.ask(q)
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        m = runnable.invoke(q)
        wrapped.append(time.perf_counter() - t)
        same += m.response_metadata["answer"] == a.answer and m.content == a.text
    out["overhead"] = {
        "direct_s_per_q": sum(direct) / len(qs),
        "runnable_s_per_q": sum(wrapped) / len(qs),
        "same_answers": f"{same}/{len(qs)}",
    }

    # 2. time to the first streamed sentence
    def first_event(q: str) -> float:
        t = time.perf_counter()
        for e in rag.stream(q):
            if isinstance(e, SentenceAccepted):
                return time.perf_counter() - t
        return float("nan")

    def first_chunk(q: str) -> float:
        t = time.perf_counter()
        for c in runnable.stream(q):
            if c.content:
                return time.perf_counter() - t
        return float("nan")

    app = create_app(rag.lm, model_name="m")
    with serving(app) as url:

        def first_served(q: str) -> float:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": q}],
                "temperature": 0,
                "max_tokens": 64,
                "stream": True,
            }
            t = time.perf_counter()
            with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=600) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {") and '"content": "' in line and '"content": ""' not in line:
                        return time.perf_counter() - t
            return float("nan")

        out["first_sentence_s"] = {
            "GatedRAG.stream": [round(first_event(q), 2) for q in qs],
            "GatedRAGRunnable.stream": [round(first_chunk(q), 2) for q in qs],
            "serve chat stream": [round(first_served(q), 2) for q in qs],
        }

    out["tokens_per_s"] = throughput(rag, qs, args.tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
