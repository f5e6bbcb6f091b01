#!/usr/bin/env bash
# Issue 17's ablation (resumable): the full policy (default gate + deep search + answer selection
# with 4 sampled versions) and each part removed in turn, on the first 100 HotpotQA dev questions,
# in one run with gated (no deep search, no selection) and gated-deep (no selection): same code,
# model, corpus and questions. Configs: benchmarks/configs/ablation/.
#
#   benchmarks/issue17_ablation.sh                        # CPU, transformers (bf16 where native)
#   DEVICE=cuda BATCH=32 benchmarks/issue17_ablation.sh   # on a GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
DEVICE=${DEVICE:-cpu}
BATCH=${BATCH:-8}
LIMIT=${LIMIT:-100}
OUT=${OUT:-benchmarks/results/issue17/ablation}
A=benchmarks/configs/ablation
methods=()
for name in full no_deep no_samples no_ptrue no_question_query corpus_gate rerank_uncertainty; do
  methods+=(--method "${name//_/-}=$A/$name.yaml")
done
# the transformers backend pinned, as in the grid's records (llama.cpp reads prompts differently)
gatedrag eval --dataset hotpotqa --methods gated,gated-deep --limit "$LIMIT" --backend hf --device "$DEVICE" \
  --batch-size "$BATCH" --out "$OUT" "${methods[@]}"
gatedrag report "$OUT" --output "$OUT/report.md"
