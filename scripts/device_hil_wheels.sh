#!/usr/bin/env bash
# Download, on this machine, the wheels the offline GPU machine needs to run gym-hil's PandaPickCube
# (HIL-SERL) with Apprentice, into .whl-hil/ (git-ignored; carried to the device with the working tree).
#
# A separate, small bundle (~14 MiB) rather than more of .whl-sim/ (52 MB, av and dm_control that gym-hil
# never loads): the two together would leave little of a device call's 64 MiB for the tree.
# gym-hil 0.1.14 declares gymnasium, mujoco<3.9, imageio[ffmpeg], hidapi, pygame and pynput; the last
# three are imported only inside its gamepad/keyboard intervention wrappers (lazily), which Apprentice does
# not build (its PandaPickCube wraps the base env), and imageio is on the device image, so they are left
# out. gym-hil imports mujoco.viewer (which imports glfw; loading it needs no display) and its env
# creates a mujoco.Renderer even for state observations, so the glvnd dispatch
# libraries travel as in .whl-sim/gl and PyOpenGL with them (MUJOCO_GL=egl on the NVIDIA
# driver). mujoco's absl-py and etils are never imported on this path.
#
#   scripts/device_hil_wheels.sh            # -> .whl-hil/*.whl (+ gl/) and prints the total size
# On the device: benchmarks/device/hilserl_pickcube.sh installs them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${WHEEL_DIR:-.whl-hil}
# Exact pins: what scripts/setup.sh resolves here (the versions the tests here run).
PINS=(
  gym-hil==0.1.14 mujoco==3.8.1 gymnasium==1.4.0 cloudpickle==3.1.3 farama-notifications==0.0.6 pyopengl==3.1.10 glfw==2.11.0
)
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp/gl"
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version 3.12 --abi cp312 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$OUT.tmp" "${PINS[@]}"
for lib in libEGL.so.1 libOpenGL.so.0 libGLdispatch.so.0; do
  src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
  if [ -n "$src" ]; then cp -L "$src" "$OUT.tmp/gl/$lib"; else echo "warning: $lib not found here (apt install libegl1 libopengl0)" >&2; fi
done
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
ls -l "$OUT"/*.whl | awk '{printf "%8.2f MiB  %s\n", $5 / 1048576, $9}'
du -cb "$OUT" | awk 'END {printf "total %.1f MiB in %s\n", $1 / 1048576, "'"$OUT"'"}'
