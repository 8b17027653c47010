#!/usr/bin/env bash
# Reproduce benchmarks/results/router-multi-llmrouter.{json,md,png} (one command): routing across LLMRouter's 9
# models, nested grouped CV, against kNN and MLP routers on the same embeddings, RouterBench's AIQ.
#   bash benchmarks/run_router_multi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
.venv/bin/openfirst bench router llmrouter-all --trials 16 --outer-folds 5 --inner-folds 3 \
  --out-dir benchmarks/results --name router-multi-llmrouter "$@"
