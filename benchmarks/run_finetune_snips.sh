#!/usr/bin/env bash
# Reproduce benchmarks/results/finetune-snips.{json,md,png}: LoRA fine-tuning of the embedded model on SNIPS at 70 and
# 300 training utterances per intent, the cascade on each, the GGUF type, and a distillation replay through the
# service (about 75 minutes on 2 cores; tuned models and records are cached, --fresh reruns them).
#   bash benchmarks/run_finetune_snips.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/openfirst bench finetune snips --out-dir benchmarks/results "$@"
