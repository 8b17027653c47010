#!/usr/bin/env bash
# Reproduce benchmarks/results/vllm-cpu-dtype.{json,md} (one command, about 8 minutes on 2 cores).
#   bash benchmarks/run_vllm_cpu_dtype.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/python benchmarks/vllm_cpu_dtype.py --out-dir benchmarks/results "$@"
