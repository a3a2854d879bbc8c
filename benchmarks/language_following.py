"""Does the instruction condition the policy? Train `--policy.type` on scripted `reach_color` demos (red and
blue target, the instruction names one) and measure the follow-rate over seeded episodes with the
instruction, and with it blanked (the color removed): a policy that ignores language sits near 50% (or
below, if it averages the two targets), one that follows it is near its success rate. Prints one JSON object.

    python benchmarks/language_following.py --policy.type=act --quick               # no-language baseline
    python benchmarks/language_following.py --policy.type=smolvla --device=cuda --steps=20000 \
        --policy.vlm_model_name=/path/to/SmolVLM2-500M-Video-Instruct      # any extra --policy.* flag passes on
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from apprentice.policies import load_policy
from apprentice.sim.eval import evaluate
from apprentice.sim.record import record
from apprentice.train.cli import main as train_main


class BlankedTask:
    """The policy with every episode's instruction replaced by `blank` (the same scene, no color named)."""

    def __init__(self, policy: Any, blank: str) -> None:
        self.policy, self.blank = policy, blank
        self.config, self.device = policy.config, policy.device

    def reset(self) -> None:
        self.policy.reset()

    def select_action(self, obs: dict[str, Any]) -> Any:
        return self.policy.select_action({**obs, "task": [self.blank] * len(obs["task"])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy.type", dest="policy_type", default="act", help="act | diffusion | smolvla | ...")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--demo-episodes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--blank-task", default="reach the target", help="what replaces the instruction")
    parser.add_argument("--dataset-root", help="reuse a recorded reach_color dataset")
    parser.add_argument("--output-dir", help="keep the dataset and checkpoint here (default: a temporary dir)")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: 10 demos, 50 steps, 10 episodes")
    args, policy_flags = parser.parse_known_args()
    if args.quick:
        args.demo_episodes, args.steps, args.eval_episodes, args.batch_size = 10, 50, 10, 8
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output_dir or tmp)
        root = Path(args.dataset_root) if args.dataset_root else out / "reach_color"
        started = time.perf_counter()
        if not args.dataset_root:
            record("reach_color", root, args.demo_episodes, log=lambda _: None)
        record_s = time.perf_counter() - started
        run_dir = out / f"train_{args.policy_type}"
        flags = [
            f"--policy.type={args.policy_type}", f"--dataset.root={root}", f"--output_dir={run_dir}",
            f"--steps={args.steps}", f"--batch_size={args.batch_size}", f"--policy.device={args.device}",
            f"--save_freq={args.steps}", "--log_freq=1000000", *policy_flags,
        ]
        started = time.perf_counter()
        if train_main(flags) != 0:
            raise SystemExit(f"training failed: apprentice train {' '.join(flags)}")
        train_s = time.perf_counter() - started
        policy = load_policy(run_dir / "checkpoints" / "last" / "pretrained_model", device=args.device)
        policy.eval()
        kwargs = {"n_episodes": args.eval_episodes, "batch_size": min(10, args.eval_episodes), "seed": 100_000}
        followed = evaluate(policy, "reach_color", **kwargs)["overall"]
        blanked = evaluate(BlankedTask(policy, args.blank_task), "reach_color", **kwargs)["overall"]
    print(json.dumps({
        "benchmark": "language_following",
        "task": "reach_color",
        "policy_type": args.policy_type,
        "device": args.device,
        "demo_episodes": args.demo_episodes,
        "train_steps": args.steps,
        "record_s": round(record_s, 1),
        "train_s": round(train_s, 1),
        "eval_episodes": args.eval_episodes,
        "follow_rate_with_instruction": followed["success_rate"],
        "follow_rate_instruction_blanked": blanked["success_rate"],
        "blank_task": args.blank_task,
    }))


if __name__ == "__main__":
    main()
