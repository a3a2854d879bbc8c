#!/usr/bin/env bash
# One short GPU-machine call (no env, no wheels to carry): benchmarks/sac_update_speed.py on CUDA at the
# PickCube batch (256, utd 2) and at batch 4 (launch overhead alone), 1 torch thread as in the HIL-SERL
# benchmark. JSON to $OUT/sac_update_speed_b256.json and _b4.json; about a minute.
#
#   benchmarks/device/sac_update_speed.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/sac_update_speed_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
for b in 256 4; do
  "$PY" benchmarks/sac_update_speed.py --device "${DEVICE:-cuda}" --batch-size "$b" --updates 200 --budget-s 200 \
    --json-out "$OUT/sac_update_speed_b$b.json"
done
