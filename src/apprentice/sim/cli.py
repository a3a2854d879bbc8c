"""`apprentice sim`: scripted demonstrations (`record`) and expert success measurement (`expert`).

apprentice sim record --env.type=aloha --env.task=AlohaTransferCube-v0 --num-episodes=50 --out data/tc
apprentice sim record --env.type=reach --num-episodes=50 --out data/reach
apprentice sim expert --env.type=reach --episodes=100
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from apprentice.sim import TASKS, SimError, make_env, make_expert

# LeRobot's (env.type, env.task) names -> our task names; env.task may be omitted where a type has one task.
ENV_TASKS: dict[tuple[str, str | None], str] = {
    ("reach", None): "reach",
    ("aloha", None): "aloha_insertion",  # lerobot's AlohaEnv default task is AlohaInsertion-v0
    ("aloha", "AlohaTransferCube-v0"): "aloha_transfer_cube",
    ("aloha", "AlohaInsertion-v0"): "aloha_insertion",
    ("pusht", None): "pusht",
    ("pusht", "PushT-v0"): "pusht",
}


def resolve_task(env_type: str, env_task: str | None) -> str:
    """Map `--env.type/--env.task` (LeRobot's names, or one of our task names) to a task name."""
    if env_task in TASKS:
        return env_task
    if (env_type, env_task) in ENV_TASKS:
        return ENV_TASKS[(env_type, env_task)]
    if env_task is None and env_type in TASKS:
        return env_type
    known = sorted({f"{t}{'/' + k if k else ''}" for t, k in ENV_TASKS})
    raise SimError(f"no simulated task for --env.type={env_type} --env.task={env_task}; known: {known}")


def resolve_name(name: str) -> str:
    """One name to a task: ours ("aloha_insertion"), an env type ("aloha"), or a task id ("AlohaInsertion-v0")."""
    if name in TASKS:
        return name
    for (env_type, env_task), task in ENV_TASKS.items():
        if name in (env_task, env_type if env_task is None else None):
            return task
    known = sorted({*TASKS, *(k for pair in ENV_TASKS for k in pair if k)})
    raise SimError(f"no simulated task named {name!r}; known: {known}")


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env.type", dest="env_type", default="reach", help="reach | aloha | pusht")
    parser.add_argument(
        "--env.task", dest="env_task", default=None, help="AlohaTransferCube-v0 | AlohaInsertion-v0 | PushT-v0"
    )
    parser.add_argument("--env.image_height", dest="image_height", type=int, default=None)
    parser.add_argument("--env.image_width", dest="image_width", type=int, default=None)
    parser.add_argument(
        "--env.episode_length",
        dest="episode_length",
        type=int,
        default=None,
        help="steps per episode (lerobot's name; default: the task's, e.g. aloha 400)",
    )


def env_kwargs(args: argparse.Namespace) -> dict[str, int]:
    """make_env kwargs from the --env.* flags (a bad value raises SimError naming the flag)."""
    kwargs = {}
    if args.image_height is not None:
        kwargs["image_height"] = args.image_height
    if args.image_width is not None:
        kwargs["image_width"] = args.image_width
    if getattr(args, "episode_length", None) is not None:
        if args.episode_length < 1:
            raise SimError(f"--env.episode_length must be >= 1, got {args.episode_length}")
        kwargs["max_episode_steps"] = args.episode_length
    return kwargs


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apprentice sim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="record scripted expert episodes into a LeRobot v3.0 dataset")
    add_env_arguments(rec)
    rec.add_argument("--num-episodes", "--num_episodes", dest="num_episodes", type=int, default=50)
    rec.add_argument("--out", "--dataset.root", dest="out", required=True, help="dataset root (must not exist)")
    rec.add_argument("--seed", type=int, default=0, help="env seed of the first episode; then seed+1, ...")
    rec.add_argument("--resume", action="store_true", help="append to an existing dataset at --out")
    rec.add_argument("--keep-failed", action="store_true", help="also save episodes the expert failed")
    rec.add_argument(
        "--frames-after-success",
        type=int,
        default=None,
        help="frames kept after the first success (default: the task's: reach 20, pusht 5, aloha to 400 steps)",
    )
    rec.add_argument("--vcodec", default=None, help="video codec for the writer (libsvtav1, h264, ...)")
    exp = sub.add_parser("expert", help="run the scripted expert and print its success rate as JSON")
    add_env_arguments(exp)
    exp.add_argument("--episodes", type=int, default=50)
    exp.add_argument("--seed", type=int, default=0)
    return parser


def _expert_success(task: str, episodes: int, seed: int, kwargs: dict) -> dict:
    from apprentice.sim.record import run_expert_episode

    env = make_env(task, seed=seed, render=False, **kwargs)
    expert = make_expert(env)
    failures = [s for s in range(seed, seed + episodes) if not run_expert_episode(env, expert, s, 0)[0]]
    env.close()
    return {
        "task": task,
        "episodes": episodes,
        "success_rate": 1 - len(failures) / episodes,
        "failed_seeds": failures,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    errors: tuple[type[Exception], ...] = (SimError,)
    if args.action == "record":
        from apprentice.dataset import DatasetError

        errors = (SimError, DatasetError)
    try:
        task = resolve_task(args.env_type, args.env_task)
        if args.action == "expert":
            print(json.dumps(_expert_success(task, args.episodes, args.seed, env_kwargs(args))))
            return 0
        from apprentice.sim.record import record

        result = record(
            task,
            args.out,
            args.num_episodes,
            seed=args.seed,
            resume=args.resume,
            keep_failed=args.keep_failed,
            frames_after_success="task" if args.frames_after_success is None else args.frames_after_success,
            vcodec=args.vcodec,
            env_kwargs=env_kwargs(args),
        )
    except errors as exc:
        print(f"apprentice sim: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"recorded {result.episodes_saved} episodes ({result.frames} frames) of {task} into {result.root} in "
        f"{result.seconds:.1f} s; expert success {result.expert_success_rate:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
