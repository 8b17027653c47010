#!/usr/bin/env bash
# Reproduce benchmarks/results/local-engines.{json,md,png} (one command, about 35 minutes on 2 cores).
#   bash benchmarks/run_local_engines.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/python benchmarks/local_engines.py --out-dir benchmarks/results "$@"
