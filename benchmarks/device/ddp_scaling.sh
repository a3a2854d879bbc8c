#!/usr/bin/env bash
# One GPU-machine call of benchmarks/ddp_scaling.py. Installs the lerobot 0.6.1 bundle when carried (.whl/ and
# its setup_device.sh: lerobot, torchcodec, PyAV on /tmp/site; accelerate 1.15 is in the device image), then
# runs ddp_scaling.py with the flags given. JSON: $OUT/NAME.json, and /tmp/ddp/NAME.json, which outlives the
# call on a warm machine (for a later call's --ours-from); progress lines on stderr, the full log $OUT/NAME.err.
#
#   benchmarks/device/ddp_scaling.sh 1gpu --gpus 1 --batch-sizes 64 --pi0-fsdp --budget-s 250 --part-timeout 90
#   benchmarks/device/ddp_scaling.sh x2-ours --gpus 1,2 --parts ours --pi0-fsdp --budget-s 540 --part-timeout 120
#   (README "Multi-GPU scaling benchmark" lists every call for 1, 2, 4 and 8 GPUs)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NAME=${1:?usage: ddp_scaling.sh NAME [ddp_scaling.py flags]}
shift
OUT=${OUT:-/tmp/ddp_out}
mkdir -p "$OUT" /tmp/ddp
if [ -f .whl/setup_device.sh ]; then
  # shellcheck disable=SC1091
  source .whl/setup_device.sh >"$OUT/$NAME.setup.log" 2>&1 || echo "# the lerobot bundle did not install: $OUT/$NAME.setup.log" >&2
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # ddp_scaling.py sets them too
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
timeout 580 python3 benchmarks/ddp_scaling.py --dataset-root /tmp/bench-ds --lerobot-python python3 \
  --json-out "/tmp/ddp/$NAME.json" "$@" 2> >(tee "$OUT/$NAME.err" | grep '^#' >&2) >/dev/null
rc=$?
cp "/tmp/ddp/$NAME.json" "$OUT/$NAME.json" 2>/dev/null
echo "# ddp_scaling $NAME rc=$rc" >&2
cat "$OUT/$NAME.json" 2>/dev/null
exit $rc
