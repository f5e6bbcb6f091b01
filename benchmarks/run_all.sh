#!/usr/bin/env bash
# Runs every benchmark one after another (they share 2 cores; running them together skews timings).
set -euo pipefail
cd "$(dirname "$0")"
python bench_bm25.py
python bench_overhead.py
python bench_throughput.py
python bench_load.py
python bench_e2e.py --limit 20 --methods closed,gated,flare
