"""`apprentice train` — lerobot-train's flags: `--policy.type=act --dataset.root=... --steps=...`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from apprentice.train.config import TrainConfig, TrainError

USAGE = """usage: apprentice train --policy.type={act,diffusion,vqbet,tdmpc} --dataset.root=DIR [--flag=value ...]

Flags follow lerobot-train: --dataset.repo_id --dataset.root --dataset.episodes --dataset.streaming
--policy.type --policy.device --policy.lr --policy.chunk_size --policy.n_action_steps
--policy.pretrained_path --policy.<any config field> --output_dir --job_name --batch_size --steps
--eval_freq --save_freq --log_freq --grad_clip_norm --num_workers --gradient_accumulation_steps
--config_path=train_config.json --resume=true --wandb.enable --seed
Apprentice: --precision={auto,fp32,bf16} --compile --channels_last --cache_device={auto,cpu,cuda}
--freeze_backbone --compile_mode=... --cuda_graphs --grad_checkpointing --ema.enable --ema.decay ...
Multi-GPU: torchrun --nproc_per_node=N -m apprentice.train <flags>.
Online (TD-MPC): --env.type=reach|xarm|... --env.task --env.max_episode_steps --online.steps (--online_steps)
--online.rollout_n_episodes --online.steps_between_rollouts --online.sampling_ratio --online.env_seed
--online.buffer_capacity --online.buffer_seed_size (README, "TD-MPC").
HIL-SERL: --policy.type=hilserl --online_training=true --env.type=gym_hil (`--policy.type=hilserl --help`).
Data: --cache_max_gb=GiB (frame cache bound; beyond it a disk cache) --cache_dir=DIR
--policy.input_shapes.observation.images.<camera>=[3,H,W] (train at a smaller image size).
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from apprentice.rl.cli import wants_online_rl

    if wants_online_rl(args):  # HIL-SERL / SAC: the online loop of apprentice.rl (README, "HIL-SERL")
        from apprentice.rl.cli import main as rl_main

        return rl_main(args)
    try:
        cfg = TrainConfig.from_args(args)
        from apprentice.train.loop import train

        path = train(cfg)
    except TrainError as exc:
        print(f"apprentice train: error: {exc}", file=sys.stderr)
        return 2
    print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
