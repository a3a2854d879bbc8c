#!/usr/bin/env bash
# One GPU-machine call for issues #13 and #17: does the instruction condition SmolVLA, π0 and π0-FAST?
# Install the sim bundle (.whl-sim/, from scripts/device_sim_wheels.sh); record DEMOS scripted reach_color demos
# once (--env.obs_type=targets_in_state, RECORD_WORKERS recorders on disjoint seed ranges, then `apprentice
# dataset merge`); then benchmarks/language_following.py --small-vlm for smolvla, pi0 and pi0fast AT ONCE on the one
# GPU, each with the wall budget left, each rewriting $OUT/lang_<policy>.json after every phase. Every phase has a
# timeout, so a cut run still returns what finished; logs' tails go to $OUT/logs.txt. Then, for issue #13 (RTC_JUMPS,
# on when smolvla is trained), benchmarks/rtc_chunk_jumps.py on the trained SmolVLA on $DEVICE: reach_color in real
# time through PolicyRuntime with and without RTC -> $OUT/rtc_smolvla.json, in RTC_RESERVE_S seconds kept out of the
# budget. $OUT gets at most 6 files: env_check.json, logs.txt, lang_<policy>.json x3, rtc_smolvla.json.
#
#   benchmarks/device/language_following.sh          # the device call (carry .whl-sim); <= BUDGET_S=560 s wall
#   POLICIES=smolvla BUDGET_S=300 benchmarks/device/language_following.sh      # one policy, shorter
#   PYTHON=/tmp/simbundle-venv/bin/python DEVICE=cpu QUICK=1 benchmarks/device/language_following.sh  # CPU rehearsal
# A POLICIES entry NAME=TYPE trains TYPE as run NAME with the extra arguments in $ARGS_NAME (two sizes side by side):
#   POLICIES="pi0fast big=pi0fast" ARGS_big="--vlm-width=384 --vlm-depth=6" benchmarks/device/language_following.sh
# Across calls: with WORK=outputs/lf (git-ignored, so it stays on a machine still warm from the last call) the demos
# are recorded once and each run resumes its last checkpoint; `--eval-episodes=0` makes a call train only.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS=0
PY=${PYTHON:-python3}
SITE=${SIM_SITE:-/tmp/site}
OUT=${OUT:-/tmp/language_following_out}
WORK=${WORK:-$(mktemp -d /tmp/language_following.XXXX)}
BUDGET_S=${BUDGET_S:-560}            # wall seconds for the whole call, install included
DEMOS=${DEMOS:-200}
RECORD_WORKERS=${RECORD_WORKERS:-12}
POLICIES=${POLICIES:-smolvla pi0 pi0fast}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-8000}                 # ceiling and cosine-decay length; the budget usually ends training first
BATCH=${BATCH:-64}
LR=${LR:-5e-4}
EVAL_RESERVE_S=${EVAL_RESERVE_S:-110}  # per run: checkpoint load + 50 + 50 evaluation episodes
case " $POLICIES " in *" smolvla "*) RTC_JUMPS=${RTC_JUMPS:-1} ;; *) RTC_JUMPS=0 ;; esac  # needs the SmolVLA
RTC_RESERVE_S=${RTC_RESERVE_S:-160}  # start-up + checkpoint load + 2 conditions x (1 warm-up + RTC_EPISODES) x 4 s
RTC_EPISODES=${RTC_EPISODES:-$([ -n "${QUICK:-}" ] && echo 2 || echo 15)}
[ "$RTC_JUMPS" = 1 ] || RTC_RESERVE_S=0
mkdir -p "$OUT" "$WORK"
log() { echo "# [$SECONDS s] $*" | tee -a "$WORK/driver.log" >&2; }
run_names() { for entry in $POLICIES; do echo "${entry%%=*}"; done; }
collect() {  # at most 8 files come back from a device call: the logs' tails travel as one file
  for f in driver.log install.log merge.log record_0.log $(run_names | sed 's/$/.log/') rtc_smolvla.log; do
    [ -f "$WORK/$f" ] && { echo "==> $f"; tail -c 5000 "$WORK/$f"; echo; }
  done >"$OUT/logs.txt"
}
trap collect EXIT

if [ -z "${SKIP_INSTALL:-}" ]; then
  ls .whl-sim/*.whl >/dev/null 2>&1 || { echo '{"error": "no .whl-sim/*.whl: run scripts/device_sim_wheels.sh and carry .whl-sim"}'; exit 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --disable-pip-version-check --target "$SITE" \
    .whl-sim/*.whl >"$WORK/install.log" 2>&1 || { tail -20 "$WORK/install.log"; exit 1; }
fi
export PYTHONPATH=$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}
export MUJOCO_GL=${MUJOCO_GL:-egl} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# glvnd's dispatch libraries (carried in .whl-sim/gl) where the image lacks them (as aloha_act_quality.sh).
if [ -d .whl-sim/gl ] && ! ldconfig -p | grep -q 'libEGL.so.1 '; then
  if [ "$(id -u)" = 0 ]; then cp .whl-sim/gl/* /usr/lib/x86_64-linux-gnu/ && ldconfig
  else export LD_LIBRARY_PATH=$PWD/.whl-sim/gl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
fi
log "installed"
# Fail in seconds, by name, if a module is missing or MuJoCo cannot render headless.
timeout 60 "$PY" - >"$OUT/env_check.json" <<'PYEOF' || { cat "$OUT/env_check.json"; exit 1; }
import importlib, json, sys
found, missing = {}, []
for name in ["torch", "transformers", "tokenizers", "numpy", "pyarrow", "safetensors", "av", "mujoco", "gymnasium",
             "apprentice"]:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as exc:  # noqa: BLE001 — report every missing module at once
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
if not missing:
    try:
        from apprentice.sim import make_env
        env = make_env("reach_color", obs_type="targets_in_state")
        obs, _ = env.reset(seed=0)
        found["frame"] = list(obs["observation.images.top"].shape)
        env.close()
        import torch
        found["cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001
        missing.append(f"reach_color render ({type(exc).__name__}: {exc})")
print(json.dumps({"python": sys.version.split()[0], "modules": found, "missing": missing}))
sys.exit(1 if missing else 0)
PYEOF
log "env ok: $(cat "$OUT/env_check.json")"

# Record once, in parallel: worker w records seeds 1000*w, 1000*w+1, ... (disjoint; eval seeds are 100000+).
if [ -f "$WORK/data/meta/info.json" ]; then
  log "reusing the demos in $WORK/data"
else
workers=$(( RECORD_WORKERS < DEMOS ? RECORD_WORKERS : DEMOS ))
pids=()
for ((w = 0; w < workers; w++)); do
  n=$(( DEMOS / workers + (w < DEMOS % workers ? 1 : 0) ))
  timeout $(( 90 + 2 * n )) "$PY" -m apprentice.cli sim record --env.type=reach_color --env.obs_type=targets_in_state \
    --num-episodes="$n" --seed=$((1000 * w)) --vcodec=h264 --out="$WORK/data_$w" >"$WORK/record_$w.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { log "a recorder failed"; tail -20 "$WORK"/record_*.log; exit 1; }; done
log "recorded $DEMOS demos with $workers workers"
if [ "$workers" -gt 1 ]; then
  timeout 120 "$PY" -m apprentice.cli dataset merge $(for ((w = 0; w < workers; w++)); do echo "$WORK/data_$w"; done) \
    --out="$WORK/data" \
    >"$WORK/merge.log" 2>&1 || { log "merge failed"; tail -20 "$WORK/merge.log"; exit 1; }
else
  mv "$WORK/data_0" "$WORK/data"
fi
log "merged"
fi

# Train + evaluate the policies at once on the one GPU, each within the budget left (minus a margin for teardown
# and the RTC post-step's reserve).
left=$(( BUDGET_S - SECONDS - 15 - RTC_RESERVE_S ))
quick=${QUICK:+--quick}
pids=()
for entry in $POLICIES; do
  name=${entry%%=*} policy=${entry#*=} extra_var=ARGS_${entry%%=*}
  # shellcheck disable=SC2086  # ARGS_<name> holds several arguments
  timeout -k 10 $((left + 10)) "$PY" benchmarks/language_following.py --policy.type="$policy" --small-vlm \
    --device="$DEVICE" --dataset-root="$WORK/data" --output-dir="$WORK/run_$name" --budget-s="$left" \
    --eval-reserve-s="$EVAL_RESERVE_S" --steps="$STEPS" --batch-size="$BATCH" --lr="$LR" --json-out="$OUT/lang_$name.json" \
    $quick ${!extra_var:-} "$@" >"$WORK/$name.log" 2>&1 &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
log "trained and evaluated (rc $rc)"

# Issue #13: the largest action jump at chunk boundaries with vs without RTC, the trained SmolVLA on the GPU alone
# (the other runs have ended), its n_action_steps (15) per chunk, 0.1 s of simulated delay on each inference.
if [ "$RTC_JUMPS" = 1 ]; then
  ckpt=$WORK/run_smolvla/train_smolvla/checkpoints/last/pretrained_model
  rtc_s=$(( BUDGET_S - SECONDS - 5 ))
  rtc_s=$(( rtc_s < RTC_RESERVE_S ? rtc_s : RTC_RESERVE_S ))
  if [ ! -f "$ckpt/config.json" ]; then
    log "rtc_chunk_jumps skipped: no SmolVLA checkpoint at $ckpt"
  elif [ "$rtc_s" -lt 30 ]; then
    log "rtc_chunk_jumps skipped: $rtc_s s of the budget left"
  else
    if timeout -k 5 "$rtc_s" "$PY" benchmarks/rtc_chunk_jumps.py --policy.path="$ckpt" --env.type=reach_color \
      --env.obs_type=targets_in_state --device="$DEVICE" --episodes="$RTC_EPISODES" \
      --json-out="$OUT/rtc_smolvla.json" >"$WORK/rtc_smolvla.log" 2>&1; then
      log "rtc_chunk_jumps done"
    else
      rc=1
      log "rtc_chunk_jumps failed or was cut at $rtc_s s (rtc_smolvla.json keeps a finished condition)"
    fi
  fi
fi
log "done (rc $rc)"
for name in $(run_names); do [ -f "$OUT/lang_$name.json" ] && cat "$OUT/lang_$name.json"; echo; done
[ -f "$OUT/rtc_smolvla.json" ] && cat "$OUT/rtc_smolvla.json"
exit "$rc"
