#!/usr/bin/env bash
# Reproduce benchmarks/results/service-load.{json,md,png} and service-replay.{json,md} (one command).
#   bash benchmarks/run_service.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
[ -f runs/gsm8k/router.json ] || .venv/bin/openfirst train routellm-gsm8k --out runs/gsm8k
.venv/bin/python benchmarks/service_load.py --router runs/gsm8k --out-dir benchmarks/results "$@"
.venv/bin/python benchmarks/service_replay.py --router runs/gsm8k --out-dir benchmarks/results
