#!/usr/bin/env bash
# Reproduce benchmarks/results/privacy.{json,md} (one command, about a minute).
#   bash benchmarks/run_privacy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python benchmarks/privacy.py --out-dir benchmarks/results "$@"
