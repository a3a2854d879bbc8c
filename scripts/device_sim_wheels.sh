#!/usr/bin/env bash
# Download, on this machine, the wheels the offline GPU machine needs to run gym-aloha (record, train, eval)
# with Apprentice, into .whl-sim/ (git-ignored; carried to the device with the working tree).
#
# The device image (Python 3.12, torch, numpy 2, opencv-python-headless, imageio, pillow, scipy, pyarrow,
# pandas, safetensors, pyyaml, huggingface_hub, tqdm) has no MuJoCo, dm_control, gym-aloha or PyAV, and a
# device call carries at most 64 MiB. dm_control's wheel alone is 56 MB, nearly all of it assets gym-aloha
# never loads (locomotion walkers and soccer, the dog model, MuJoCo test models, Blender exporter), so it
# is rebuilt here without them (see SLIM_DROP). Declared dependencies this path never imports are left out:
# labmaze (dm_control.locomotion only), glfw (MUJOCO_GL=glfw only), dm-tree with attrs and wrapt
# (dm_control.composer and dm_env's test utilities only), protobuf, requests, pyparsing, etils.
# What stays was found by importing gym_aloha and running both scripted experts with rendering in a
# fresh Python 3.12 venv holding only these wheels (benchmarks/device/aloha_act_quality.sh --quick).
#
#   scripts/device_sim_wheels.sh            # -> .whl-sim/*.whl and prints the total size
#   AV_VERSION=15.1.0 scripts/device_sim_wheels.sh   # the PyAV whose FFmpeg 7 torchcodec 0.11 links to
# On the device:
#   python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl-sim/*.whl
#   export PYTHONPATH=$PWD/src:/tmp/site MUJOCO_GL=egl
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${WHEEL_DIR:-.whl-sim}
AV_VERSION=${AV_VERSION:-18.1.0}
PY=${PYTHON:-python3}
# Exact pins: what scripts/setup.sh resolves for the sim extra (mujoco<3.9 from gym-aloha, dm_control 1.0.41
# for mujoco 3.8.1), so the device runs the versions the tests here run.
PINS=(
  mujoco==3.8.1 dm-control==1.0.41 gym-aloha==0.1.5 gymnasium==1.4.0 cloudpickle==3.1.3
  farama-notifications==0.0.6 dm-env==1.6 absl-py==2.5.1 pyopengl==3.1.10 lxml==6.1.3 "av==$AV_VERSION"
)
# Paths inside the dm_control wheel that gym-aloha's import and run never touch.
SLIM_DROP='^dm_control/(locomotion|manipulation|blender|mujoco/testing|mjcf/test_assets|third_party/kinova|suite/dog_assets|entities/manipulators/kinova)/|^dm_control/.*_test\.py$|^dm_control/.*\.png$'

rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version 3.12 --abi cp312 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUT.tmp" "${PINS[@]}"

# Rebuild dm_control without SLIM_DROP: same name and version, RECORD rewritten for what remains, so
# pip installs it like the original.
"$PY" - "$OUT.tmp" "$SLIM_DROP" <<'EOF'
import base64, hashlib, re, sys, zipfile
from pathlib import Path

folder, drop = Path(sys.argv[1]), re.compile(sys.argv[2])
src = next(folder.glob("dm_control-*.whl"))
dst = src.with_suffix(".slim")
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
    record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
    lines = []
    for item in zin.infolist():
        if item.filename == record_name or drop.search(item.filename):
            continue
        data = zin.read(item)
        zout.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{item.filename},sha256={digest},{len(data)}")
    lines.append(f"{record_name},,")
    zout.writestr(record_name, "\n".join(lines) + "\n")
before, after = src.stat().st_size, dst.stat().st_size
dst.replace(src)
print(f"dm_control slimmed: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
EOF

# The GPU image has the NVIDIA EGL vendor library (libEGL_nvidia) and its glvnd ICD file, but not glvnd's
# dispatch libraries that PyOpenGL and MuJoCo open by their plain names; they are ~1 MB and ABI-stable,
# so this machine's copies (Debian libegl1/libopengl0/libglvnd0) travel in gl/ and the run installs them.
mkdir -p "$OUT.tmp/gl"
for lib in libEGL.so.1 libOpenGL.so.0 libGLdispatch.so.0; do
  src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
  if [ -n "$src" ]; then cp -L "$src" "$OUT.tmp/gl/$lib"; else echo "warning: $lib not found here (apt install libegl1 libopengl0)" >&2; fi
done
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
ls -l "$OUT"/*.whl | awk '{printf "%8.2f MiB  %s\n", $5 / 1048576, $9}'
du -cb "$OUT"/*.whl | awk 'END {printf "total %.1f MiB in %s\n", $1 / 1048576, "'"$OUT"'"}'
