#!/usr/bin/env bash
# Reproduce benchmarks/results/route-startup.{json,md} (one command, about 3 minutes on 2 cores).
#   bash benchmarks/run_route_startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/python benchmarks/route_startup.py "$@"
