#!/usr/bin/env bash
# Reproduce benchmarks/results/replicas.{json,md}: 4 `openfirst serve` replicas sharing a real Redis and PostgreSQL
# (budget, rate limit, chaos, added latency). Needs redis-server and PostgreSQL (bash .ci/setup installs them).
#   bash benchmarks/run_replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/python benchmarks/replicas.py --out-dir benchmarks/results "$@"
