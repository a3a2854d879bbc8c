#!/usr/bin/env bash
# One GPU-machine call: our full-size π0-FAST training step beside lerobot 0.6.1's (benchmarks/pi0fast_train.py
# --lerobot-python), batch 32, bf16 weights, gradient checkpointing, 4 timed steps after 1 warm-up -> $OUT/
# pi0fast_lerobot.json (rewritten after each side, so a cut run keeps ours) and $OUT/pi0fast_lerobot.log.
# Install .whl-vla/ (scripts/device_vla_wheels.sh: lerobot 0.6.1, its pinned transformers 5.5.4 and the few
# packages the image lacks) into LEROBOT_SITE=/tmp/lrsite and write the LEROBOT_PYTHON=/tmp/lrpy wrapper that puts
# it first on the path, so lerobot's transformers shadows the image's only in the lerobot subprocess. Within
# BUDGET_S=250 s wall, install included.
#
#   benchmarks/device/pi0fast_lerobot.sh            # the device call (carry .whl-vla)
#   PYTHON=.venv/bin/python LEROBOT_BASE_PYTHON=/path/py3.12 DEVICE=cpu QUICK=1 benchmarks/device/pi0fast_lerobot.sh
#       # CPU rehearsal: install + wrapper around a Python 3.12 holding the image's packages, tiny configs
#   SKIP_INSTALL=1 LEROBOT_PYTHON=/work/lr061/bin/python PYTHON=.venv/bin/python DEVICE=cpu QUICK=1 ...
#       # CPU rehearsal on a lerobot venv as it is
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS=0
PY=${PYTHON:-python3}
LRBASE=${LEROBOT_BASE_PYTHON:-$PY}   # the interpreter the wrapper runs (the image's python3 on the device)
SITE=${LEROBOT_SITE:-/tmp/lrsite}
LRPY=${LEROBOT_PYTHON:-/tmp/lrpy}
OUT=${OUT:-/tmp/pi0fast_lerobot_out}
BUDGET_S=${BUDGET_S:-250}
PART_TIMEOUT_S=${PART_TIMEOUT_S:-150}  # the lerobot side: start-up + build (3.45 B) + 5 steps
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-32}
mkdir -p "$OUT"
LOG=$OUT/pi0fast_lerobot.log
log() { echo "# [$SECONDS s] $*" | tee -a "$LOG" >&2; }

if [ -z "${SKIP_INSTALL:-}" ]; then
  ls .whl-vla/*.whl >/dev/null 2>&1 || { echo '{"error": "no .whl-vla/*.whl: run scripts/device_vla_wheels.sh and carry .whl-vla"}'; exit 1; }
  "$LRBASE" -m pip install -q --no-index --no-deps --no-compile --upgrade --disable-pip-version-check --target "$SITE" \
    .whl-vla/*.whl >>"$LOG" 2>&1 || { tail -20 "$LOG"; exit 1; }
  printf '#!/bin/sh\nPYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH} exec %s "$@"\n' "$SITE" "$LRBASE" >"$LRPY"
  chmod +x "$LRPY"
  log "installed .whl-vla into $SITE; wrapper $LRPY"
fi
export PYTHONPATH=$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Which lerobot/transformers the subprocess sees (a missing module shows here in seconds; the benchmark then
# records lerobot's side as an error and still measures ours).
timeout 90 "$LRPY" -c 'import lerobot, transformers, torch, lerobot.policies.pi0_fast.modeling_pi0_fast
print("lerobot", lerobot.__version__, "transformers", transformers.__version__, "torch", torch.__version__)' \
  >>"$LOG" 2>&1 && log "lerobot side: $(tail -1 "$LOG")" || log "lerobot side does not import (see $LOG)"

left=$(( BUDGET_S - SECONDS - 10 ))
quick=${QUICK:+--quick}
timeout -k 5 "$left" "$PY" benchmarks/pi0fast_train.py --device "$DEVICE" --batch-size "$BATCH" --grad-checkpointing \
  --dtype bfloat16 --steps 4 --warmup 1 --lerobot-python "$LRPY" --part-timeout "$PART_TIMEOUT_S" \
  --json-out "$OUT/pi0fast_lerobot.json" $quick "$@" 2>>"$LOG" >/dev/null
rc=$?
log "pi0fast_train.py exit $rc"
cat "$OUT/pi0fast_lerobot.json" 2>/dev/null || tail -30 "$LOG"
echo
exit "$rc"
