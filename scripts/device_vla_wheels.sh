#!/usr/bin/env bash
# Download, on this machine, the wheels the offline GPU machine needs to import lerobot 0.6.1's pi0_fast beside its
# own packages (its pi0, pi05 and smolvla modeling modules import with them too), into .whl-vla/ (git-ignored;
# carried to the device with the working tree). benchmarks/device/pi0fast_lerobot.sh installs them into a separate
# --target dir (/tmp/lrsite) that only the lerobot subprocess puts first on its path (through the /tmp/lrpy
# wrapper), so the image's own packages stay as they are for everything else.
#
# The device image (Python 3.12, torch 2.11, torchvision, transformers 5.17, tokenizers 0.23.2, huggingface_hub
# 1.33, accelerate, einops, safetensors, numpy 2.5, scipy, peft, opencv, pillow, requests, pyyaml, tqdm, rich,
# typer, typing-inspect, cloudpickle ...) lacks:
# - transformers 5.5.4: lerobot 0.6.1 pins transformers to 5.4-5.5 (its pi_gemma/paligemma code follows that API);
# - tokenizers 0.22.2: transformers 5.5.4 checks tokenizers<=0.23.0 at import, and the image has 0.23.2;
# - lerobot itself, and its import-time dependencies the image has not: draccus (+ mergedeep, toml; pyyaml and
#   typing-inspect are in the image), gymnasium (lerobot.envs.configs, imported by lerobot.configs; + farama-
#   notifications; cloudpickle is in the image).
# What stays was found by importing lerobot.policies.pi0_fast.modeling_pi0_fast and running
# benchmarks/pi0fast_train.py --quick --lerobot-python on a wrapper like /tmp/lrpy, in a fresh Python 3.12 venv
# holding the image's packages (torch 2.11, transformers 5.17, tokenizers 0.23.2, numpy 2.5.2 ...) and these
# wheels only. lerobot's other declared dependencies (termcolor, cmake, opencv's numpy<2.3 cap ...) are either in
# the image or never imported on that path, and --no-deps keeps pip from resolving them.
#
#   scripts/device_vla_wheels.sh            # -> .whl-vla/*.whl and prints the total size (~16 MiB)
# On the device (benchmarks/device/pi0fast_lerobot.sh does this):
#   python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/lrsite .whl-vla/*.whl
#   printf '#!/bin/sh\nPYTHONPATH=/tmp/lrsite:$PYTHONPATH exec python3 "$@"\n' >/tmp/lrpy && chmod +x /tmp/lrpy
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${WHEEL_DIR:-.whl-vla}
# Exact pins: lerobot 0.6.1 and the versions a plain `pip install lerobot==0.6.1 'transformers==5.5.*'` resolves.
PINS=(
  lerobot==0.6.1 transformers==5.5.4 tokenizers==0.22.2
  draccus==0.11.6 mergedeep==1.3.4 toml==0.10.2 gymnasium==1.4.0 farama-notifications==0.0.6
)

rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUT.tmp" "${PINS[@]}"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
ls -l "$OUT"/*.whl | awk '{printf "%8.2f MiB  %s\n", $5 / 1048576, $9}'
du -cb "$OUT"/*.whl | awk 'END {printf "total %.1f MiB in %s\n", $1 / 1048576, "'"$OUT"'"}'
