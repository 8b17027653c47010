#!/usr/bin/env bash
# Reproduce the compiler numbers in benchmarks/results/ (one command).
#   bash benchmarks/run_compiler.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# raw XGrammar for the side-by-side comes with .ci/setup (vLLM's pinned xgrammar 0.2.8)
OUT=benchmarks/results
.venv/bin/openfirst bench compiler --schemas ../shared/datasets/jsonschemabench/maskbench.jsonl.gz --xgrammar-every 10 \
  --out-dir "$OUT" --no-progress
.venv/bin/python benchmarks/compiler_models.py --schemas 200 --out-dir "$OUT"
