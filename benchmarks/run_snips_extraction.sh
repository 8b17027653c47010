#!/usr/bin/env bash
# Reproduce benchmarks/results/snips-extraction.{json,md,png} (one command; about 25 minutes on 2 cores the first
# time: the local model runs 1,400 times; the per-utterance records are then cached and a rerun takes seconds).
#   bash benchmarks/run_snips_extraction.sh [--fresh] [--limit N] [--frontier-accuracy P]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/openfirst bench extraction snips --no-progress "$@"
