"""llama.cpp vs transformers on the same prompts: prefill and decode speed (batch 1), peak memory.

Each backend runs in a fresh process (so its peak resident memory is its own): the model is
loaded, then for each of a few real RAG prompts (HotpotQA dev questions with their BM25 top-3
passages, rendered by the pipeline's ``cot`` template) the prompt is read and one token written
(prefill), then 64 more tokens are written (decode) through the backend-neutral session protocol.
The CPU's flags are recorded with the numbers (``native_bf16``: whether transformers can run
bfloat16 here; on a CPU without it, its ``auto`` dtype is float32).

    python benchmarks/bench_llamacpp.py                      # llamacpp, hf-float32, hf-bfloat16
    python benchmarks/bench_llamacpp.py --backends llamacpp --questions 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, save

BACKENDS = ("llamacpp", "hf-float32", "hf-bfloat16")


def prompts(n: int) -> list[str]:
    from gatedrag.evals.datasets import corpus_path, load_dataset
    from gatedrag.prompts import PromptTemplate
    from gatedrag.retrieval.bm25 import BM25Retriever

    template = PromptTemplate.load("cot")
    questions = load_dataset("hotpotqa", DATA, limit=n, skip=template.source_ids)
    retriever = BM25Retriever.from_corpus(corpus_path("hotpotqa", DATA))
    out = []
    for q in questions:
        hits = retriever.retrieve([q.question], 3)[0]
        out.append(template.render(q.question, hits)[1])
    return out


def measure(
    backend: str, texts: list[str], new_tokens: int, threads: int | None, llamacpp: dict, n_single: int
) -> dict:
    from gatedrag.config import LlamaCppConfig, ModelConfig
    from gatedrag.factory import build_model
    from gatedrag.lm.llamacpp import LlamaCppLanguageModel

    t0 = time.perf_counter()
    if backend == "llamacpp":
        config = ModelConfig(backend="llamacpp", threads=threads, llamacpp=LlamaCppConfig(**llamacpp))
    else:
        config = ModelConfig(backend="hf", dtype=backend.split("-")[1], threads=threads)
    lm = build_model(config)
    load_s = time.perf_counter() - t0
    rows = []
    for i, prompt in enumerate(texts[:n_single]):
        if isinstance(lm, LlamaCppLanguageModel):
            lm.clear_cache()  # every prompt read from scratch, as transformers reads it here
        session = lm.open_session()
        session.start(i, prompt)
        t = time.perf_counter()
        first = session.decode([i], on_sentence=lambda k, s: "continue", budgets={i: 1})[i]
        prefill_s = time.perf_counter() - t
        t = time.perf_counter()
        rest = session.decode([i], on_sentence=lambda k, s: "continue", budgets={i: new_tokens})[i]
        decode_s = time.perf_counter() - t
        session.close(i)
        text = " ".join(s.text for s in [*first.sentences, *rest.sentences])
        rows.append(
            {
                "prompt_tokens": lm.count_tokens(prompt),
                "prefill_tok_s": lm.count_tokens(prompt) / prefill_s,
                "decode_tok_s": rest.new_tokens / decode_s,
                "new_tokens": rest.new_tokens,
                "text": text[:160],
            }
        )
    together = {}
    if backend == "llamacpp" and len(texts) > 1:  # several rows at once: one call per step, or a row at a time
        for batch_rows in (True, False):
            lm.batch_rows = batch_rows
            lm.clear_cache()
            session = lm.open_session()
            keys = list(range(len(texts)))
            for i in keys:
                session.start(i, texts[i])
            session.decode(keys, on_sentence=lambda k, s: "continue", budgets=dict.fromkeys(keys, 1))
            t = time.perf_counter()
            out = session.decode(keys, on_sentence=lambda k, s: "continue", budgets=dict.fromkeys(keys, new_tokens))
            rate = sum(o.new_tokens for o in out.values()) / (time.perf_counter() - t)
            together["batched" if batch_rows else "one_at_a_time"] = round(rate, 1)
    return {
        "backend": backend,
        f"decode_{len(texts)}_rows_tok_s": together or None,
        "load_s": round(load_s, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "prefill_tok_s": round(statistics.median(r["prefill_tok_s"] for r in rows), 1),
        "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in rows), 1),
        "prompt_tokens": [r["prompt_tokens"] for r in rows],
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--questions", type=int, default=3, help="prompts measured one at a time")
    ap.add_argument(
        "--rows", type=int, default=8, help="prompts decoded together (llamacpp: batched vs a row at a time)"
    )
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cells", type=int, default=None, help="model.llamacpp.cells")
    ap.add_argument("--n-batch", type=int, default=None, help="model.llamacpp.n_batch")
    ap.add_argument("--out", default="llamacpp_speed", help="result name in .bench/")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # run one backend in this process
    ap.add_argument("--prompts", help=argparse.SUPPRESS)
    args = ap.parse_args()
    settings = {k: v for k, v in {"cells": args.cells, "n_batch": args.n_batch}.items() if v is not None}
    if args.one:  # the prompts come from the parent: the retriever's memory is not the model's
        texts = json.loads(Path(args.prompts).read_text())
        print(json.dumps(measure(args.one, texts, args.new_tokens, args.threads, settings, args.questions)))
        return
    prompt_file = Path(__file__).resolve().parents[1] / ".bench" / "llamacpp_prompts.json"
    prompt_file.parent.mkdir(exist_ok=True)
    prompt_file.write_text(json.dumps(prompts(max(args.questions, args.rows))))
    from gatedrag.lm.cpu import cpu_flags, native_bf16

    results = []
    for backend in args.backends.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            backend,
            "--prompts",
            str(prompt_file),
            "--questions",
            str(args.questions),
        ]
        cmd += ["--new-tokens", str(args.new_tokens)] + (["--threads", str(args.threads)] if args.threads else [])
        cmd += [x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v))]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
        if done.returncode != 0:
            results.append({"backend": backend, "error": done.stderr[-2000:]})
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"{backend}: prefill {r['prefill_tok_s']} tok/s, decode {r['decode_tok_s']} tok/s, "
            f"peak {r['peak_rss_gib']} GiB, load {r['load_s']} s",
            flush=True,
        )
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma", "f16c")))
    save(args.out, {"native_bf16": native_bf16(), "cpu_flags": flags, "llamacpp": settings, "results": results})


if __name__ == "__main__":
    main()
