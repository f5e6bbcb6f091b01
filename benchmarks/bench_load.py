"""Model load time: cold (assemble the parts, verify sha256, convert once) and warm (cached).

The cold run uses an empty temporary cache so nothing already converted is reused.

    python benchmarks/bench_load.py [--model qwen2.5-coder-1.5b-instruct] [--warm-reps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import save

CHILD = """
import time, resource, sys
t0 = time.perf_counter()
import torch, transformers
from gatedrag.config import ModelConfig
from gatedrag.lm.hf import HFLanguageModel
t1 = time.perf_counter()
lm = HFLanguageModel.load(ModelConfig(name=sys.argv[1]))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def run(model: str, cache: str) -> tuple[float, float, float]:
    """(import seconds, load seconds, peak RSS GiB) of a fresh process loading ``model``."""
    env = {**os.environ, "GATEDRAG_CACHE": cache, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run([sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True, check=True)
    imports, load, rss = out.stdout.strip().splitlines()[-1].split()
    return float(imports), float(load), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--warm-reps", type=int, default=3)
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="gatedrag-bench-")
    try:
        cold = run(args.model, cache)
        warm = [run(args.model, cache) for _ in range(args.warm_reps)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    save(
        f"load-{args.model}",
        {
            "model": args.model,
            "cold_load_s": round(cold[1], 1),
            "cold_peak_rss_gib": round(cold[2], 2),
            "warm_load_s": [round(w[1], 2) for w in warm],
            "warm_load_median_s": round(statistics.median(w[1] for w in warm), 2),
            "import_torch_transformers_gatedrag_s": round(statistics.median(w[0] for w in warm), 2),
            "note": "HFLanguageModel.load() in a fresh process after its imports; cold = empty cache "
            "(assemble 22 parts, sha256, dequantize, save safetensors), warm = cached safetensors",
        },
    )


if __name__ == "__main__":
    main()
