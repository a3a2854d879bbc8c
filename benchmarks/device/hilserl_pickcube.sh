#!/usr/bin/env bash
# One GPU-machine call: install the gym-hil bundle (.whl-hil/, from scripts/device_hil_wheels.sh), then
# benchmarks/hilserl_pickcube.py: HIL-SERL on PandaPickCube (state) with the scripted operator and the same
# run without interventions, in parallel, each inside a wall budget. The report goes to stdout and
# $OUT/hilserl.json (rewritten every few seconds, so a cut run still returns its curve), the PNG to
# $OUT/hilserl.png, the environment check and the children's log tails to $OUT.
#
#   benchmarks/device/hilserl_pickcube.sh                    # the ~9-minute run (device: carry .whl-hil)
#   benchmarks/device/hilserl_pickcube.sh --utd_ratio 4      # any hilserl_pickcube.py flag
#   PYTHON=python DEVICE=cpu BUDGET_S=200 benchmarks/device/hilserl_pickcube.sh --quick   # CPU rehearsal
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PYTHON:-python3}
SITE=${HIL_SITE:-/tmp/hil-site}
OUT=${OUT:-/tmp/hilserl_pickcube_out}
WORK=${WORK:-$(mktemp -d /tmp/hilserl_pickcube.XXXX)}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$WORK"
SECONDS=0
BUDGET_S=${BUDGET_S:-540}  # wall seconds for the whole call, install included (a device call may run 600)
if [ -z "${SKIP_INSTALL:-}" ]; then
  ls .whl-hil/*.whl >/dev/null 2>&1 || { echo '{"error": "no .whl-hil/*.whl: run scripts/device_hil_wheels.sh here and carry .whl-hil"}'; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --disable-pip-version-check --target "$SITE" .whl-hil/*.whl \
    >"$WORK/install.log" 2>&1 || { tail -20 "$WORK/install.log"; exit 1; }
  export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
fi
export INSTALL_S=$SECONDS
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# 2 learners + 2 x 6 eval workers on 16 cores: one BLAS/OpenMP thread each (small matrices; oversubscribed
# thread pools only contend).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# glvnd's dispatch libraries (carried in .whl-hil/gl) where the image lacks them, as aloha_act_quality.sh.
if [ -d .whl-hil/gl ] && ! ldconfig -p | grep -q 'libEGL.so.1 '; then
  if [ "$(id -u)" = 0 ]; then cp .whl-hil/gl/* /usr/lib/x86_64-linux-gnu/ && ldconfig
  else export LD_LIBRARY_PATH=$PWD/.whl-hil/gl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
fi
# gym-hil builds a mujoco.Renderer even for state observations, so a GL context must open: EGL (the NVIDIA
# driver, as gym-aloha on this device) first, then OSMesa (what worked on the CPU machine), else stop here
# with the reason. The check also fails in seconds, by name, on a missing module.
check() {
  MUJOCO_GL=$1 "$PY" - <<'PYEOF'
import importlib, json, os, sys
need = ["torch", "numpy", "mujoco", "gymnasium", "gym_hil", "OpenGL", "glfw", "imageio", "PIL", "apprentice"]
found, missing = {}, []
for name in need:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as exc:  # noqa: BLE001 — report every missing module at once
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
try:
    import matplotlib
    found["matplotlib"] = matplotlib.__version__
except ImportError:
    found["matplotlib"] = None  # the PNG is then drawn with PIL
import torch
found["cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
found["cpus"] = os.cpu_count()
if not missing:  # the env the benchmark builds, one step
    try:
        from apprentice.sim import make_env
        env = make_env("gym_hil_pick_cube", seed=0, render=False, obs_type="environment_state_agent_pos",
                       random_block_position=True, max_episode_steps=5)
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
    except Exception as exc:  # noqa: BLE001
        missing.append(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')} gym_hil env ({type(exc).__name__}: {exc})")
print(json.dumps({"python": sys.version.split()[0], "install_s": int(os.environ["INSTALL_S"]),
                  "mujoco_gl": os.environ.get("MUJOCO_GL"), "modules": found, "missing": missing}))
sys.exit(1 if missing else 0)
PYEOF
}
if [ -n "${MUJOCO_GL:-}" ] && check "$MUJOCO_GL" >"$OUT/env_check.json" 2>"$WORK/check.err"; then :
elif check egl >"$OUT/env_check.json" 2>"$WORK/check.err"; then export MUJOCO_GL=egl
elif check osmesa >"$OUT/env_check_osmesa.json" 2>>"$WORK/check.err"; then
  export MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa; mv "$OUT/env_check_osmesa.json" "$OUT/env_check.json"
else
  cat "$OUT/env_check.json" "$OUT/env_check_osmesa.json" 2>/dev/null; tail -5 "$WORK/check.err"; exit 1
fi
[ "$MUJOCO_GL" = osmesa ] || export PYOPENGL_PLATFORM=$MUJOCO_GL
set +e
# The benchmark stops its children at its own budget; `timeout` is the backstop, leaving time for the
# log tails below. What the JSON held at that moment stays in $OUT/hilserl.json.
LEFT=$((BUDGET_S - SECONDS))
timeout -k 10 $((LEFT - 15)) "$PY" benchmarks/hilserl_pickcube.py --device "$DEVICE" --budget-s $((LEFT - 45)) \
  --out "$WORK/runs" --json-out "$OUT/hilserl.json" --png "$OUT/hilserl.png" "$@" | tee "$WORK/stdout.json"
rc=${PIPESTATUS[0]}
set -e
for f in "$WORK"/runs/*.log "$WORK/check.err"; do
  [ -f "$f" ] && { echo "==> $f"; tail -c 3000 "$f"; echo; }
done >"$OUT/logs.txt"
exit "$rc"
