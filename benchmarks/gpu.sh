#!/usr/bin/env bash
# The GPU check in one go, under 8 minutes on one H100/H200, for a short device lease:
#   bash benchmarks/gpu.sh            (results in $OUT, or benchmarks/results)
# Uses the machine's own PyTorch (nothing is downloaded): latentrec runs from src/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu_smi.txt"
# the same models on CUDA and on the CPU must agree (tests/test_gpu.py)
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.txt"
timeout 300 python3 benchmarks/gpu.py --out "$out" 2>&1 | tee "$out/gpu_log.txt"
