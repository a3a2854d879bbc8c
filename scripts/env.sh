# Source me: `source scripts/env.sh` — activates .venv and the colcon install of apprentice.
# Discovery stays on this machine unless you already chose otherwise (ROS_AUTOMATIC_DISCOVERY_RANGE).
_apprentice_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for _distro in kilted jazzy humble; do
  if [ -f "/opt/ros/$_distro/setup.bash" ]; then set +u; source "/opt/ros/$_distro/setup.bash"; break; fi
done
# shellcheck disable=SC1091
source "$_apprentice_root/.venv/bin/activate"
export AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$VIRTUAL_ENV
export CMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH:}$VIRTUAL_ENV
if [ -f "$_apprentice_root/install/setup.bash" ]; then
  set +u
  # shellcheck disable=SC1091
  source "$_apprentice_root/install/setup.bash"
fi
# ROS 2's launch tooling built by setup.sh from ../shared/ros2-launch (not on PyPI): `ros2 launch`, `ros2 node`.
if [ -f "$_apprentice_root/.ros2-launch/current/local_setup.bash" ]; then
  set +u
  # shellcheck disable=SC1091
  source "$_apprentice_root/.ros2-launch/current/local_setup.bash"
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$_apprentice_root/.ros2-launch/current/site
fi
# The checkout's sources first: the install tree holds a snapshot of src/ from the last colcon build,
# and `apprentice` extends its __path__ to the install for the generated msg/srv modules.
export PYTHONPATH=$_apprentice_root/src${PYTHONPATH:+:$PYTHONPATH}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export MUJOCO_GL=${MUJOCO_GL:-egl}
unset _apprentice_root _distro
