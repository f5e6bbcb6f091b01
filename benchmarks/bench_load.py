"""Model load time: cold (assemble the parts, verify sha256, convert once) and warm (cached).

The cold run uses an empty temporary cache so nothing already converted is reused.

    python benchmarks/bench_load.py [--model qwen2.5-coder-1.5b-instruct] [--warm-reps 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import save

CHILD = """
import time, resource, sys
t0 = time.perf_counter()
from gatedrag.config import ModelConfig
from gatedrag.lm.hf import HFLanguageModel
lm = HFLanguageModel.load(ModelConfig(name=sys.argv[1]))
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def run(model: str, cache: str) -> tuple[float, float]:
    env = {**os.environ, "GATEDRAG_CACHE": cache, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run([sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True, check=True)
    seconds, rss = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--warm-reps", type=int, default=3)
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="gatedrag-bench-")
    try:
        cold, cold_rss = run(args.model, cache)
        warm = [run(args.model, cache) for _ in range(args.warm_reps)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    save(
        f"load-{args.model}",
        {
            "model": args.model,
            "cold_s": round(cold, 1),
            "cold_peak_rss_gib": round(cold_rss, 2),
            "warm_s": [round(w, 2) for w, _ in warm],
            "warm_median_s": round(statistics.median(w for w, _ in warm), 2),
            "warm_peak_rss_gib": round(statistics.median(r for _, r in warm), 2),
            "note": "wall time of HFLanguageModel.load in a fresh process (imports included)",
            "self_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        },
    )


if __name__ == "__main__":
    main()
