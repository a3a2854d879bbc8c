#!/usr/bin/env bash
# colcon-build the apprentice package: ./scripts/build.sh [SOURCE_DIR [WORKSPACE_DIR]]
# Defaults build this checkout into ./build and ./install. Needs the .venv from scripts/setup.sh
# (or a sourced apt ROS 2). Tests use it to build a copy of the package in a clean temporary workspace.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$(cd "${1:-$ROOT}" && pwd)
WS=${2:-$ROOT}
mkdir -p "$WS"; WS=$(cd "$WS" && pwd)

if [ -z "${VIRTUAL_ENV:-}" ] && [ -f "$ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  source "$ROOT/.venv/bin/activate"
fi
# interfaces/ holds tf2_msgs (TFMessage only) for wheel-based ROS, which has no tf2_msgs wheel; an apt
# ROS 2 has the real package, which must not be shadowed.
BASE_PATHS=("$SRC")
if [ -d "$SRC/interfaces" ]; then BASE_PATHS+=("$SRC/interfaces"); fi
if [ -n "${ROS_DISTRO:-}" ] && [ -d "/opt/ros/$ROS_DISTRO" ]; then
  BASE_PATHS=("$SRC")
  NUMPY_INCLUDE=$(/usr/bin/python3 -c 'import numpy; print(numpy.get_include())')
else
  # Wheel-based ROS: the message wheels' CMake exports name /opt/python/cp311-cp311/... (see setup.sh),
  # and CMake refuses exported include paths inside a source tree (.venv lives in the checkout), so
  # numpy's headers are handed over through the link outside the tree.
  export AMENT_PREFIX_PATH=${VIRTUAL_ENV}${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  export CMAKE_PREFIX_PATH=${VIRTUAL_ENV}${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  NUMPY_INCLUDE=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
fi
# The checkout builds with --symlink-install (edits show without a rebuild); a copy elsewhere does not,
# unless APPRENTICE_SYMLINK_INSTALL=1/0 says otherwise.
SYMLINK=(--symlink-install)
[ "$SRC" = "$ROOT" ] || SYMLINK=()
case "${APPRENTICE_SYMLINK_INSTALL:-}" in
  1) SYMLINK=(--symlink-install) ;;
  0) SYMLINK=() ;;
esac

cd "$WS"
colcon --log-base "$WS/log" build --base-paths "${BASE_PATHS[@]}" --build-base "$WS/build" --install-base "$WS/install" \
  "${SYMLINK[@]}" --event-handlers console_cohesion- summary+ \
  --cmake-args -DPython3_EXECUTABLE="$(command -v python3)" -DPython3_NumPy_INCLUDE_DIR="$NUMPY_INCLUDE"
