#!/usr/bin/env bash
# Reproduce every router number in benchmarks/results/ (one command; ~45 min on 2 cores, embeddings cached after the first run).
#   bash benchmarks/run_router.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OF=.venv/bin/openfirst
OUT=benchmarks/results
mkdir -p "$OUT" runs
# routing quality: nested 5-fold CV (a study per outer fold), the numbers the search never saw
$OF bench router routellm-gsm8k --out-dir "$OUT" --name router-routellm-gsm8k --no-progress
$OF bench router routellm-mmlu --out-dir "$OUT" --name router-routellm-mmlu --trials 20 --no-progress
$OF bench router routellm-mt-bench --out-dir "$OUT" --name router-routellm-mt-bench --no-progress
$OF bench router llmrouter --out-dir "$OUT" --name router-llmrouter --no-progress
# training time of the default study on GSM8K (embeddings cached), and the router it makes
start=$SECONDS
$OF train routellm-gsm8k --out runs/gsm8k --no-progress --json > "$OUT/router-train-gsm8k.json"
echo "{\"wall_seconds\": $((SECONDS - start)), \"command\": \"openfirst train routellm-gsm8k --out runs/gsm8k\"}" \
  > "$OUT/router-train-gsm8k-wall.json"
# latency: single query, batch, classifier share of the embedding time
.venv/bin/python benchmarks/router_latency.py --router runs/gsm8k --out-dir "$OUT"
