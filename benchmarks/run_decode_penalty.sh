#!/usr/bin/env bash
# Reproduce benchmarks/results/decode-penalty.{json,md} (one command, about 15 minutes on 2 cores).
#   bash benchmarks/run_decode_penalty.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/python benchmarks/decode_penalty.py --out-dir benchmarks/results "$@"
