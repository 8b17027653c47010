#!/usr/bin/env bash
# Reproduce the server-backend numbers in benchmarks/results/backends.{json,md} (one command).
#   bash benchmarks/run_backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python benchmarks/backends.py --out-dir benchmarks/results "$@"
