#!/usr/bin/env bash
# ACT on ALOHA transfer-cube (gym-aloha's AlohaTransferCube-v0), end to end on one GPU machine: 50 scripted
# demonstrations -> train ACT (LeRobot's default architecture) -> seeded evaluation of checkpoints. Prints
# JSON lines. benchmarks/aloha_act.py is the one-JSON version with lerobot's ACT recipe (batch 8, lr 1e-5).
#
#   benchmarks/act_transfer_cube.sh record-and-train WORK [TRAIN_SECONDS] [BATCH] [LR]
#       record 50 expert episodes into WORK/data, then start training in its own process session
#       (it outlives this command) with a checkpoint every 1000 steps; returns TRAIN_SECONDS after it
#       began (recording included), leaving the training running.
#   [WAIT_S=s] benchmarks/act_transfer_cube.sh eval WORK [N_EPISODES] [STEP ...]
#       after WAIT_S more seconds of training, stop it, then evaluate the newest checkpoint (and any
#       named steps, e.g. 002000) on N seeded episodes.
#
# Needs: torch with CUDA, gym-aloha (the sim extra; MUJOCO_GL=egl), PyAV; PYTHONPATH holding src/.
set -euo pipefail
phase=$1
work=$2
py=${PYTHON:-python3}
export MUJOCO_GL=${MUJOCO_GL:-egl} PYTHONUNBUFFERED=1

case "$phase" in
record-and-train)
  seconds=${3:-420}
  batch=${4:-64}
  lr=${5:-5e-5}
  mkdir -p "$work"
  t0=$(date +%s)
  "$py" -m apprentice.cli sim record --env.type=aloha --env.task=AlohaTransferCube-v0 --num-episodes=50 \
    --out "$work/data" --vcodec h264 >"$work/record.log" 2>&1 || { tail -20 "$work/record.log"; exit 1; }
  echo "{\"phase\": \"record\", \"seconds\": $(($(date +%s) - t0)), \"last\": \"$(tail -1 "$work/record.log" | tr -d '"')\"}"
  setsid nohup "$py" -m apprentice.train --policy.type=act --dataset.root="$work/data" --output_dir="$work/train" \
    --batch_size="$batch" --policy.lr="$lr" --steps=200000 --save_freq=1000 --log_freq=100 --seed=1000 \
    >"$work/train.log" 2>&1 </dev/null &
  echo $! >"$work/train.pid"
  left=$((t0 + seconds - $(date +%s)))
  [ "$left" -gt 0 ] && sleep "$left"
  tail -c 600 "$work/train.log"; echo
  tail -1 "$work/train/logs/train.jsonl" 2>/dev/null || true
  ;;
eval)
  episodes=${3:-50}
  shift $(($# < 3 ? $# : 3))
  wait_s=${WAIT_S:-0}
  [ "$wait_s" -gt 0 ] && sleep "$wait_s"
  # SIGTERM, not SIGINT: a background job of a non-interactive shell ignores SIGINT. Checkpoints are
  # renamed into place, so stopping mid-save leaves the previous one whole.
  if [ -f "$work/train.pid" ]; then kill -TERM "$(cat "$work/train.pid")" 2>/dev/null || true; sleep 5; fi
  tail -1 "$work/train/logs/train.jsonl" || true
  for step in "$(readlink "$work/train/checkpoints/last")" "$@"; do
    ckpt="$work/train/checkpoints/$step/pretrained_model"
    [ -d "$ckpt" ] || { echo "{\"checkpoint\": \"$step\", \"error\": \"missing\"}"; continue; }
    "$py" -m apprentice.cli eval --policy.path="$ckpt" --policy.device=cuda --env.type=aloha \
      --env.task=AlohaTransferCube-v0 --eval.n_episodes="$episodes" --eval.batch_size=10 \
      --eval.max_episodes_rendered=2 --output_dir="$work/eval_$step" >"$work/eval_$step.log" 2>&1 \
      || { tail -20 "$work/eval_$step.log"; continue; }
    "$py" - "$work/eval_$step/eval_info.json" "$step" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
print(json.dumps({"checkpoint_step": int(sys.argv[2]), **info.get("overall", {})}))
EOF
  done
  ;;
*) echo "usage: $0 record-and-train|eval WORK ..." >&2; exit 2 ;;
esac
