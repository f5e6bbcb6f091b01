#!/usr/bin/env bash
# The evaluation grid of issues 4-6 with the default model, resumable across sessions and machines.
#
#   benchmarks/eval_grid.sh                       # CPU, 8 questions per batch
#   DEVICE=cuda BATCH=32 benchmarks/eval_grid.sh  # on a GPU machine
#
# Records go to benchmarks/results/ (committed, one JSONL line per question: a session that is cut
# off keeps what it finished, and the next one resumes with the same command). Cheap parts first,
# then every method on the same questions in stages of 40, 80 and 100 per dataset, so a complete
# side-by-side table exists at every stage.  Reports: gatedrag report benchmarks/results/eval
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=benchmarks/results
DEVICE=${DEVICE:-cpu}
BATCH=${BATCH:-8}
run() { gatedrag eval --out "$OUT/eval" --device "$DEVICE" --batch-size "$BATCH" "$@"; }

ISSUE4=no-rag,sr-rag,gated,flare,token-rag,dragin,fs-rag,fl-rag
CORPUS=quco-rag,gated-corpus
# candidates for the default gate, run beside the baselines as custom methods
CANDIDATES=(--method gated-q=benchmarks/configs/gated_q.yaml --method gated-rfq=benchmarks/configs/gated_rfq.yaml
  --method gated-rfq-c3=benchmarks/configs/gated_rfq_c3.yaml --method gated-rfqp-c3=benchmarks/configs/gated_rfqp_c3.yaml)
# past 40 questions only the two that led at 40 (carrying earlier passages) go on, after the baselines
LEADERS=(--method gated-rfq-c3=benchmarks/configs/gated_rfq_c3.yaml --method gated-rfqp-c3=benchmarks/configs/gated_rfqp_c3.yaml)

# issue 6: knowledge conflict (PopQA counterfactuals), every alpha and adaptive against plain RAG
python benchmarks/bench_control.py conflict --limit 100 --epsilon 1.0 --out "$OUT/control/conflict_eps1.jsonl"
python benchmarks/bench_control.py conflict --limit 100 --epsilon 1.0 --order popularity \
  --out "$OUT/control/conflict_popular_eps1.jsonl"
# issue 6: ordinary RAG on PopQA and HotpotQA, adaptive control vs plain RAG with the same passages
gatedrag eval --out "$OUT/popqa" --device "$DEVICE" --batch-size "$BATCH" --dataset popqa --methods sr-rag,sr-rag-ck --limit 100
run --dataset hotpotqa --methods sr-rag,sr-rag-ck --limit 100
# the default gate's candidates first, against the default
run --dataset hotpotqa --methods gated "${CANDIDATES[@]}" --limit 40

run --dataset hotpotqa --methods "$ISSUE4,$CORPUS,sr-rag-ck" "${CANDIDATES[@]}" --limit 40
run --dataset 2wikimultihopqa --methods "$ISSUE4,$CORPUS" "${CANDIDATES[@]}" --limit 40
# the methods of issues 4 and 5 reach 100 on both datasets first; the two candidates follow
for N in 80 100; do
  run --dataset hotpotqa --methods "$ISSUE4,$CORPUS,sr-rag-ck" --limit "$N"
  run --dataset 2wikimultihopqa --methods "$ISSUE4,$CORPUS" --limit "$N"
done
# gated-q too: its queries find a supporting passage far more often (benchmarks/bench_queries.py)
for N in 80 100; do
  run --dataset hotpotqa --methods gated "${LEADERS[@]}" --method gated-q=benchmarks/configs/gated_q.yaml --limit "$N"
  run --dataset 2wikimultihopqa --methods gated "${LEADERS[@]}" --method gated-q=benchmarks/configs/gated_q.yaml --limit "$N"
done
