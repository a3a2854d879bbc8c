"""Does the instruction condition the policy? Train `--policy.type` on scripted `reach_color` demos (red and
blue target, the instruction names one) and measure the follow-rate over seeded episodes with the
instruction, and with it blanked (the color removed): a policy that ignores language sits near 50% (or
below, if it averages the two targets), one that follows it is near its success rate. Prints one JSON object.

The demos are recorded with `--obs-type` (default `targets_in_state`: observation.state = 6 joints + red xyz +
blue xyz), because SmolVLA and the π policies read only observation.state and the cameras, and the 1.6 cm
targets are a few pixels of the 96x128 frame; the instruction stays the only thing that says which one counts.
`--small-vlm` builds a small random-initialised VLM and its tokenizers for smolvla / pi0 / pi0fast on the spot
(benchmarks/small_vlms.py; no Hub). `--budget-s` bounds the whole run: training stops (the trainer's
`--max_train_s`) when only `--eval-reserve-s` is left. `--json-out FILE` is rewritten after recording, after
training and after each evaluation, so a run cut short still leaves what finished.

    python benchmarks/language_following.py --policy.type=act --quick               # no-language baseline
    python benchmarks/language_following.py --policy.type=smolvla --small-vlm --quick   # CPU smoke run
    python benchmarks/language_following.py --policy.type=pi0 --small-vlm --device=cuda --budget-s=480 \
        --dataset-root=data/reach_color --json-out=out/lang_pi0.json
    python benchmarks/language_following.py --policy.type=smolvla --device=cuda --steps=20000 \
        --policy.vlm_model_name=/path/to/SmolVLM2-500M-Video-Instruct      # any extra --policy.* flag passes on
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from apprentice.policies import load_policy
from apprentice.sim.eval import evaluate
from apprentice.sim.reach_color import INSTRUCTIONS
from apprentice.sim.record import record
from apprentice.train.cli import main as train_main
from apprentice.train.loop import read_metrics
from small_vlms import policy_flags as small_vlm_flags
from vla_build import progress, write_partial

VLA_TYPES = ("smolvla", "pi0", "pi05", "pi0fast")


class BlankedTask:
    """The policy with every episode's instruction replaced by `blank` (the same scene, no color named)."""

    def __init__(self, policy: Any, blank: str) -> None:
        self.policy, self.blank = policy, blank
        self.config, self.device = policy.config, policy.device

    def reset(self) -> None:
        self.policy.reset()

    def select_action(self, obs: dict[str, Any]) -> Any:
        return self.policy.select_action({**obs, "task": [self.blank] * len(obs["task"])})


def dataset_obs_type(root: Path) -> str:
    """targets_in_state when the dataset's observation.state carries the targets (12 values), else the default."""
    state = json.loads((root / "meta" / "info.json").read_text())["features"]["observation.state"]
    return "targets_in_state" if list(state["shape"]) == [12] else "environment_state"


def min_dist_cm(info: dict[str, Any]) -> list[float]:
    """Each episode's closest approach of the tip to the instructed target (cm), from reach's reward 1 - d/25cm
    (25 = never within 25 cm): tells an imprecise reach (a few cm) from one that went elsewhere."""
    return [round(25.0 * (1.0 - r), 1) for t in info["per_task"] for r in t["metrics"]["max_rewards"]]


def decode_stats_since(policy: Any, before: dict[str, int]) -> dict[str, int]:
    """π0-FAST's decoding counters (`decode_stats`) accumulated since `before`."""
    after = policy.decode_stats()
    return {k: after[k] - before.get(k, 0) for k in after}


def decoding_diagnostics(policy: Any, root: Path, episodes: list[int], max_frames: int = 128) -> dict[str, Any]:
    """π0-FAST on demo frames of `episodes` (frames at multiples of n_action_steps: where it replans):
    `token_stats` (teacher-forced per-position accuracy and cross-entropy), decoding fallbacks of greedy
    decoding, and how far the decoded chunk is from the demo's (dataset units, and exact = the FAST round
    trip of the demo chunk, all a perfect model can decode)."""
    import torch

    from apprentice.dataset import LeRobotDataset

    c = policy.config
    probe = LeRobotDataset(root, episodes=episodes)
    ds = LeRobotDataset(root, episodes=episodes,
                        delta_timestamps={"action": [i / probe.fps for i in range(c.chunk_size)]})
    picked = [i for i in range(len(ds)) if int(ds[i]["frame_index"]) % c.n_action_steps == 0][:max_frames]
    items = [ds[i] for i in picked]
    keys = [k for k in c.input_features if k in items[0]]
    batch = {k: torch.stack([it[k] for it in items]).to(policy.device) for k in keys}
    batch["task"] = [it["task"] for it in items]
    demo = torch.stack([it["action"] for it in items]).float().to(policy.device)
    out: dict[str, Any] = {"frames": len(items), **policy.token_stats({**batch, "action": demo})}
    before = policy.decode_stats()
    decoded = policy.predict_action_chunk(batch).float()
    out["decode_stats"] = decode_stats_since(policy, before)
    best = policy.fast_round_trip(demo)
    err = (decoded - demo).abs()
    out.update(abs_err_mean=round(float(err.mean()), 4), abs_err_first_step_mean=round(float(err[:, 0].mean()), 4),
               chunks_exact=float(((decoded - best).abs().amax(dim=(1, 2)) < 1e-4).float().mean()),
               round_trip_abs_err_mean=round(float((best - demo).abs().mean()), 4))
    return out


def explicit_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options written on the command line (`--x=1` or `--x 1`), whatever their value: --quick
    must keep a value given explicitly even when it equals the parser's default."""
    flags = {opt: action.dest for action in parser._actions for opt in action.option_strings}
    return {flags[arg.split("=", 1)[0]] for arg in argv if arg.split("=", 1)[0] in flags}


def vla_defaults(policy_type: str, steps: int, chunk: int, n_action: int, lr: float) -> list[str]:
    """Flags for training a small VLA from scratch (user flags come later and win): chunks that cover a reach, a
    learning rate for random init rather than fine-tuning, a short warm-up, the cosine decay over the run."""
    flags = [f"--policy.chunk_size={chunk}", f"--policy.n_action_steps={n_action}", f"--policy.optimizer_lr={lr:g}",
             f"--policy.scheduler_warmup_steps={min(200, max(1, steps // 10))}",
             f"--policy.scheduler_decay_steps={steps}"]
    if policy_type == "smolvla":
        flags.append("--policy.num_steps=10")
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy.type", dest="policy_type", default="act", help="act | diffusion | smolvla | ...")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--demo-episodes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20000, help="training steps (fewer if --budget-s ends first)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-episodes", type=int, default=50, help="0: train only (a later run resumes)")
    parser.add_argument("--eval-n-action-steps", default=None,
                        help="comma list: evaluate the trained policy at each of these actions-per-chunk (default: "
                             "its own n_action_steps); the first one's numbers are the top-level keys")
    parser.add_argument("--eval-batch-size", type=int, default=10, help="envs stepped together in evaluation")
    parser.add_argument("--blank-task", default="reach the target", help="what replaces the instruction")
    parser.add_argument("--obs-type", default="targets_in_state", choices=["targets_in_state", "environment_state"],
                        help="reach_color's --env.obs_type for recording and evaluation (a --dataset-root's own wins)")
    parser.add_argument("--dataset-root", help="reuse a recorded reach_color dataset")
    parser.add_argument("--output-dir", help="keep the dataset and checkpoint here (default: a temporary dir)")
    parser.add_argument("--small-vlm", action="store_true",
                        help="smolvla/pi0/pi0fast: build a small random VLM + tokenizers (benchmarks/small_vlms.py)")
    parser.add_argument("--chunk-size", type=int, default=30, help="--small-vlm: the VLA's chunk_size")
    parser.add_argument("--vlm-width", type=int, default=None, help="--small-vlm pi0fast: Gemma width (256)")
    parser.add_argument("--vlm-depth", type=int, default=None, help="--small-vlm pi0fast: Gemma layers (4)")
    parser.add_argument("--n-action-steps", type=int, default=15, help="--small-vlm: actions run per chunk")
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="--small-vlm: learning rate (from scratch; on CPU at the --quick size 1e-3 cut the loss "
                        "to 0.045 in 3000 steps where 3e-4 left 0.126)")
    parser.add_argument("--budget-s", type=float, default=None, help="wall seconds for the whole run")
    parser.add_argument("--eval-reserve-s", type=float, default=120.0,
                        help="with --budget-s: seconds kept for loading + both evaluations")
    parser.add_argument("--train-startup-s", type=float, default=30.0,
                        help="with --budget-s: seconds the trainer needs before its first step (data, build)")
    parser.add_argument("--json-out", type=Path, default=None, help="rewrite this JSON file after each phase")
    parser.add_argument("--diagnose-episodes", type=int, default=20,
                        help="pi0fast: also record this many held-out demos (the eval seeds) and report token "
                        "accuracy / decoding diagnostics on them and on as many training episodes (0: skip)")
    parser.add_argument("--quick", action="store_true",
                        help="CPU smoke run: tiny VLMs, 10 demos, 50 steps, 10 episodes (unless given)")
    args, policy_flags = parser.parse_known_args()
    started_run = time.monotonic()
    if args.quick:  # tiny sizes; a number given on the command line is kept (even one equal to the default)
        quick = {"demo_episodes": 10, "steps": 50, "eval_episodes": 10, "batch_size": 8, "chunk_size": 10,
                 "n_action_steps": 10}
        given = explicit_options(parser, sys.argv[1:])
        for name, value in quick.items():
            if name not in given:
                setattr(args, name, value)
    if args.small_vlm and args.policy_type not in VLA_TYPES:
        raise SystemExit(f"--small-vlm is for {', '.join(VLA_TYPES)}; --policy.type={args.policy_type} has no VLM")
    result: dict[str, Any] = {
        "benchmark": "language_following", "task": "reach_color", "policy_type": args.policy_type,
        "device": args.device, "quick": args.quick, "small_vlm": args.small_vlm, "budget_s": args.budget_s,
        "blank_task": args.blank_task, "instructions": list(INSTRUCTIONS),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output_dir or tmp)
        root = Path(args.dataset_root) if args.dataset_root else out / "reach_color"
        started = time.perf_counter()
        if args.dataset_root or (root / "meta" / "info.json").is_file():  # given, or kept in --output-dir
            args.obs_type = dataset_obs_type(root)
        else:
            record("reach_color", root, args.demo_episodes, env_kwargs={"obs_type": args.obs_type}, log=lambda _: None)
            result["demo_episodes"] = args.demo_episodes
        result.update(record_s=round(time.perf_counter() - started, 1), obs_type=args.obs_type,
                      dataset_root=str(root))
        write_partial(args.json_out, result)
        progress(f"demos ready ({result['record_s']} s)")

        run_dir = out / f"train_{args.policy_type}"
        extra: list[str] = []
        if args.small_vlm:
            started = time.perf_counter()
            vlm_flags, env = small_vlm_flags(args.policy_type, out / f"vlm_{args.policy_type}", root,
                                             " ".join([*INSTRUCTIONS, args.blank_task]), args.quick, args.chunk_size,
                                             width=args.vlm_width, depth=args.vlm_depth)
            os.environ.update(env)
            defaults = vla_defaults(args.policy_type, args.steps, args.chunk_size, args.n_action_steps, args.lr)
            extra = [*defaults, *vlm_flags]
            result["vlm_build_s"] = round(time.perf_counter() - started, 1)
        flags = [
            f"--policy.type={args.policy_type}", f"--dataset.root={root}", f"--output_dir={run_dir}",
            f"--steps={args.steps}", f"--batch_size={args.batch_size}", f"--policy.device={args.device}",
            f"--save_freq={args.steps}", f"--log_freq={max(1, min(500, args.steps // 10))}", *extra, *policy_flags,
        ]
        last = run_dir / "checkpoints" / "last"
        if last.exists():  # a run cut by an earlier call's budget continues (same schedule, next batch)
            flags.append("--resume=true")
            result["resumed_from_step"] = int(last.resolve().name)
        if args.budget_s is not None:
            reserve = args.eval_reserve_s if args.eval_episodes > 0 else 0.0
            left = args.budget_s - (time.monotonic() - started_run) - reserve - args.train_startup_s
            flags.append(f"--max_train_s={max(1.0, left):.0f}")
        result["train_flags"] = [f for f in flags if not f.startswith(("--dataset.root", "--output_dir"))]
        started = time.perf_counter()
        progress(f"training: apprentice train {' '.join(flags)}")
        if train_main(flags) != 0:
            result["error"] = "training failed (its log is above)"
            write_partial(args.json_out, result)
            raise SystemExit(f"training failed: apprentice train {' '.join(flags)}")
        metrics = read_metrics(run_dir)
        result.update(train_s=round(time.perf_counter() - started, 1), train_steps=int(last.resolve().name),
                      steps_asked=args.steps, final_loss=metrics[-1]["loss"] if metrics else None,
                      samples_per_s=round(metrics[-1]["samples_per_s"], 1) if metrics else None)
        write_partial(args.json_out, result)
        progress(f"trained {result['train_steps']} steps in {result['train_s']} s, loss {result['final_loss']}")

        if args.eval_episodes < 1:
            result["total_s"] = round(time.monotonic() - started_run, 1)
            write_partial(args.json_out, result)
            print(json.dumps(result))
            return
        policy = load_policy(last / "pretrained_model", device=args.device)
        policy.eval()
        kwargs = {"n_episodes": args.eval_episodes, "batch_size": min(args.eval_batch_size, args.eval_episodes),
                  "seed": 100_000, "env_kwargs": {"obs_type": args.obs_type}}
        result["eval_episodes"] = args.eval_episodes
        if args.diagnose_episodes > 0 and hasattr(policy, "token_stats"):
            started = time.perf_counter()
            held = out / "held_out_demos"  # the eval seeds' scenes, solved by the expert
            record("reach_color", held, args.diagnose_episodes, seed=kwargs["seed"],
                   env_kwargs={"obs_type": args.obs_type}, log=lambda _: None)
            n_train = json.loads((root / "meta" / "info.json").read_text())["total_episodes"]
            result["diagnostics"] = {
                "train_episodes": decoding_diagnostics(policy, root, list(range(min(n_train, args.diagnose_episodes)))),
                "held_out_episodes": decoding_diagnostics(policy, held, list(range(args.diagnose_episodes))),
                "diagnose_s": round(time.perf_counter() - started, 1)}
            write_partial(args.json_out, result)
            progress(f"diagnostics: {json.dumps(result['diagnostics'])}")
        sweep = ([int(v) for v in args.eval_n_action_steps.split(",")] if args.eval_n_action_steps
                 else [policy.config.n_action_steps])
        for i, n_action in enumerate(sweep):
            policy.config.n_action_steps = n_action  # the queue takes it at the next reset (each episode)
            into = result if i == 0 else result.setdefault("n_action_steps_sweep", {}).setdefault(str(n_action), {})
            into["eval_n_action_steps"] = n_action
            for key, evaluated in (("follow_rate_with_instruction", policy),
                                   ("follow_rate_instruction_blanked", BlankedTask(policy, args.blank_task))):
                started = time.perf_counter()
                before = policy.decode_stats() if hasattr(policy, "decode_stats") else None
                info = evaluate(evaluated, "reach_color", **kwargs)
                into[key] = info["overall"]["success_rate"]
                into[key.replace("follow_rate", "min_dist_cm")] = min_dist_cm(info)
                if before is not None:
                    into[key.replace("follow_rate", "decode_stats")] = decode_stats_since(policy, before)
                into[key.replace("follow_rate", "eval_s")] = round(time.perf_counter() - started, 1)
                write_partial(args.json_out, result)
                progress(f"{key} at {n_action} actions per chunk: {into[key]} "
                         f"({into[key.replace('follow_rate', 'eval_s')]} s)")
    result["total_s"] = round(time.monotonic() - started_run, 1)
    write_partial(args.json_out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
