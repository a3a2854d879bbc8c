#!/usr/bin/env bash
# One GPU-machine call: install the sim bundle (.whl-sim/, from scripts/device_sim_wheels.sh), then
# benchmarks/aloha_act_quality.py (record 50 scripted gym-aloha transfer-cube episodes -> train ACT with
# --cuda_graphs -> evaluate 100 seeded episodes); its JSON goes to stdout and $OUT/result.json, and
# eval_info.json, the logs' tails and the environment check to $OUT. Extra arguments go to the Python script.
#
#   benchmarks/device/aloha_act_quality.sh                  # the 9-minute run (device: carry .whl-sim)
#   benchmarks/device/aloha_act_quality.sh --steps 5000     # any aloha_act_quality.py flag
#   PYTHON=/tmp/simbundle-venv/bin/python benchmarks/device/aloha_act_quality.sh --quick   # CPU rehearsal
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PYTHON:-python3}
SITE=${SIM_SITE:-/tmp/site}
OUT=${OUT:-/tmp/aloha_act_quality_out}
WORK=${WORK:-$(mktemp -d /tmp/aloha_act_quality.XXXX)}
mkdir -p "$OUT" "$WORK"
ls .whl-sim/*.whl >/dev/null 2>&1 || { echo '{"error": "no .whl-sim/*.whl: run scripts/device_sim_wheels.sh here and carry .whl-sim"}'; exit 1; }
SECONDS=0
BUDGET_S=${BUDGET_S:-540}  # wall seconds for the whole call, install included (a device call may run 600)
"$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --disable-pip-version-check --target "$SITE" .whl-sim/*.whl \
  >"$WORK/install.log" 2>&1 || { tail -20 "$WORK/install.log"; exit 1; }
export INSTALL_S=$SECONDS
export PYTHONPATH=$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}
# No display on the device: MuJoCo renders through EGL (the NVIDIA driver's libEGL); PYOPENGL_PLATFORM
# follows MUJOCO_GL inside dm_control.
export MUJOCO_GL=${MUJOCO_GL:-egl} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# glvnd's dispatch libraries (carried in .whl-sim/gl) where the image lacks them; as root into the system
# library dir so ctypes.util.find_library (PyOpenGL) sees them, else on LD_LIBRARY_PATH.
if [ -d .whl-sim/gl ] && ! ldconfig -p | grep -q 'libEGL.so.1 '; then
  if [ "$(id -u)" = 0 ]; then cp .whl-sim/gl/* /usr/lib/x86_64-linux-gnu/ && ldconfig
  else export LD_LIBRARY_PATH=$PWD/.whl-sim/gl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
fi
# Fail in seconds, by name, if the image lacks a module the run needs (before any recording).
"$PY" - >"$OUT/env_check.json" <<'PYEOF' || { cat "$OUT/env_check.json"; exit 1; }
import importlib, json, os, sys
need = ["torch", "numpy", "pyarrow", "pandas", "yaml", "safetensors", "huggingface_hub", "cv2", "av",
        "mujoco", "dm_control", "gym_aloha", "gymnasium", "apprentice"]
found, missing = {}, []
for name in need:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as exc:  # noqa: BLE001 — report every missing module at once
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
import torch
found["cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
if not missing:  # one headless frame, and which OpenGL renders it (the GPU's, not Mesa's llvmpipe)
    try:
        import mujoco
        from OpenGL import GL
        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
        renderer = mujoco.Renderer(model, 48, 64)
        renderer.update_scene(mujoco.MjData(model))
        renderer.render()
        found["gl_renderer"] = GL.glGetString(GL.GL_RENDERER).decode()
        renderer.close()
    except Exception as exc:  # noqa: BLE001
        missing.append(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')} rendering ({type(exc).__name__}: {exc})")
print(json.dumps({"python": sys.version.split()[0], "install_s": int(os.environ["INSTALL_S"]), "modules": found,
                  "missing": missing}))
sys.exit(1 if missing else 0)
PYEOF
set +e
"$PY" benchmarks/aloha_act_quality.py --work "$WORK" --out "$OUT" --budget-s $((BUDGET_S - SECONDS)) "$@" | tee "$WORK/stdout.json"
rc=${PIPESTATUS[0]}
set -e
# At most 8 files come back from a device call: the logs' tails travel as one file.
for f in stdout.json record_0.log merge.log train.log eval.log; do
  [ -f "$WORK/$f" ] && { echo "==> $f"; tail -c 4000 "$WORK/$f"; echo; }
done >"$OUT/logs.txt"
exit "$rc"
