#!/usr/bin/env bash
# Reproduce benchmarks/results/service-abuse.{json,md} (one command, about half a minute).
#   bash benchmarks/run_service_abuse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python benchmarks/service_abuse.py --out-dir benchmarks/results "$@"
