#!/usr/bin/env bash
# Reproduce benchmarks/results/doctor.{json,md}: `openfirst doctor` on this machine (about 1.5 minutes on 2 cores).
#   bash benchmarks/run_doctor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
mkdir -p benchmarks/results
.venv/bin/openfirst doctor --json > benchmarks/results/doctor.json
.venv/bin/python -c 'import json, sys; from openfirst.compiler.doctor import render
print("# openfirst doctor on this machine\n\nCommand: `bash benchmarks/run_doctor.sh`\n\n```\n" + render(json.load(open(sys.argv[1]))) + "\n```")' \
    benchmarks/results/doctor.json > benchmarks/results/doctor.md
cat benchmarks/results/doctor.md
