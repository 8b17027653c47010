#!/usr/bin/env bash
# Reproduce benchmarks/results/small-model-guards.{json,md,png} (one command, about 20 minutes on 2 cores).
#   bash benchmarks/run_small_model_guards.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/python benchmarks/small_model_guards.py "$@"
