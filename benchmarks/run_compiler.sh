#!/usr/bin/env bash
# Reproduce the compiler numbers in benchmarks/results/ (one command).
#   bash benchmarks/run_compiler.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# raw XGrammar for the side-by-side: CPU needs neither triton nor its CUDA kernels
.venv/bin/python -m pip install -q --no-deps xgrammar apache-tvm-ffi
OUT=benchmarks/results
.venv/bin/openfirst bench compiler --schemas ../shared/datasets/jsonschemabench/maskbench.jsonl.gz --xgrammar-every 10 \
  --out-dir "$OUT" --no-progress
.venv/bin/python benchmarks/compiler_models.py --schemas 200 --out-dir "$OUT"
