#!/usr/bin/env bash
# The one GPU check (benchmarks/gpu_check.py): one JSON line per figure.
#   bash benchmarks/gpu_check.sh          # on a CUDA machine, no network needed, < 8 min
#   bash benchmarks/gpu_check.sh --cpu    # the dry run on a CPU (tests/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python benchmarks/gpu_check.py "$@"
