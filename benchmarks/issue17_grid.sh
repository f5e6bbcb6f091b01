#!/usr/bin/env bash
# The grid of issue 17 (deep search, hybrid retrieval, answer selection, the gold ceiling), resumable.
#
#   benchmarks/issue17_grid.sh                       # CPU, 8 questions per batch
#   DEVICE=cuda BATCH=32 benchmarks/issue17_grid.sh  # on a GPU machine
#
# Stage 1 (HotpotQA, first 40): the default gate with hybrid retrieval beside the committed BM25
# records, and the gold ceiling. Then every method on the same questions per dataset, BM25 and
# hybrid in separate directories (one retriever per run), in stages of 40 and 100. The combiner is
# fitted on spare dev questions only (offset 100), never on the evaluated ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=benchmarks/results/issue17
DEVICE=${DEVICE:-cpu}
BATCH=${BATCH:-8}
run() { gatedrag eval --device "$DEVICE" --batch-size "$BATCH" "$@"; }
BASELINES=no-rag,sr-rag,fs-rag,flare,token-rag,dragin,quco-rag
OURS=gated,gated-deep,gated-select,gold

# stage 1: is hybrid retrieval worth its default? (HotpotQA, first 40)
run --dataset hotpotqa --methods gated --limit 40 --config benchmarks/configs/hybrid.yaml --out "$OUT/hybrid"
run --dataset hotpotqa --methods gold --limit 40 --out "$OUT/bm25"
# stage 2: our rungs beside the baselines, 40 then 100 questions of each dataset
for N in 40 100; do
  for DS in hotpotqa 2wikimultihopqa musique; do
    run --dataset "$DS" --methods "$OURS,$BASELINES" --limit "$N" --out "$OUT/bm25"
    run --dataset "$DS" --methods gated,gated-deep --limit "$N" --config benchmarks/configs/hybrid.yaml --out "$OUT/hybrid"
  done
done
# stage 3: the combiner, on spare dev questions (HotpotQA 682 more, 2Wiki 154 more)
gatedrag tune --combiner --dataset hotpotqa,2wikimultihopqa --limit 150 --offset 100 --out "$OUT/combiner" \
  --device "$DEVICE" --batch-size "$BATCH"
gatedrag report "$OUT/bm25" --output "$OUT/bm25/report.md"
