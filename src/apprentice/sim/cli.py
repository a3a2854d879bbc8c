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

from apprentice.sim import LIBERO_SUITES, SUITES, TASKS, SimError, make_env, make_expert, suite_tasks
from apprentice.sim.eval import EvalTask, eval_tasks

# LeRobot's (env.type, env.task) names -> our registry names (a TASKS task, or a SUITES suite for
# multi-task evaluation); env.task None is the type's default. Help and errors list what is here.
ENV_TASKS: dict[tuple[str, str | None], str] = {
    ("reach", None): "reach",
    ("aloha", None): "aloha_insertion",  # lerobot's AlohaEnv default task is AlohaInsertion-v0
    ("aloha", "AlohaTransferCube-v0"): "aloha_transfer_cube",
    ("aloha", "AlohaInsertion-v0"): "aloha_insertion",
    ("pusht", None): "pusht",
    ("pusht", "PushT-v0"): "pusht",
    ("xarm", None): "xarm_lift",
    ("xarm", "XarmLift-v0"): "xarm_lift",
    ("gym_hil", None): "gym_hil_pick_cube",
    # gym-hil's ids under lerobot's type names: gym_hil (the issue's), hil (lerobot 0.3), gym_manipulator (0.4+)
    **{
        (env_type, f"PandaPickCube{variant}-v0"): f"gym_hil_pick_cube{variant and '_' + variant.lower()}"
        for env_type in ("gym_hil", "hil", "gym_manipulator")
        for variant in ("", "Base", "Gamepad", "Keyboard")
    },
    ("metaworld", None): "metaworld_push-v3",
    # MT1 tasks by name (push-v3, ...) and lerobot's MT50 groups (easy, medium, hard, very_hard: SUITES)
    **{
        ("metaworld", name.removeprefix("metaworld_")): name
        for name in [*TASKS, *SUITES]
        if name.startswith("metaworld_")
    },
    ("libero", None): "libero_10",
    **{("libero", suite): suite for suite in LIBERO_SUITES},
}


def _lookup(env_type: str, env_task: str | None) -> str:
    """The registry name (a TASKS task or a SUITES suite) for one `--env.type/--env.task` pair."""
    if env_task in TASKS or env_task in SUITES:
        return env_task
    if (env_type, env_task) in ENV_TASKS:
        return ENV_TASKS[(env_type, env_task)]
    if env_task is None and (env_type in TASKS or env_type in SUITES):
        return env_type
    raise SimError(f"no simulated task for --env.type={env_type} --env.task={env_task}; valid: {env_choices()}")


def env_choices() -> str:
    """Every valid `--env.type`/`--env.task`, from the registries (ENV_TASKS, TASKS, SUITES), on one line."""
    per_type: dict[str, list[str]] = {}
    for env_type, env_task in ENV_TASKS:
        per_type.setdefault(env_type, [])
        if env_task is not None:
            per_type[env_type].append(env_task)
    types = "; ".join(
        f"--env.type={t}" + (f" --env.task={'|'.join(sorted(k))}" if k else "") for t, k in sorted(per_type.items())
    )
    suites = f", suites {', '.join(sorted(SUITES))}" if SUITES else ""
    return f"{types} (or --env.task=<registry name>: tasks {', '.join(sorted(TASKS))}{suites})"


def resolve_task(env_type: str, env_task: str | None) -> str:
    """Map `--env.type/--env.task` (LeRobot's names, or one of our task names) to a task name."""
    name = _lookup(env_type, env_task)
    if name not in TASKS:
        raise SimError(f"--env.task={env_task} is a suite of {len(suite_tasks(name))} tasks; name one of its tasks")
    return name


def resolve_eval_tasks(env_type: str, env_task: str | None) -> list[EvalTask]:
    """`--env.task=a,b,c` (tasks or suites, LeRobot's names or ours) as EvalTasks grouped as lerobot-eval:
    one task alone is group `<env.type>` (task_id 0); in a list, each task is a group of its own and
    each suite a group of its tasks, named as typed."""
    entries: list[str | None] = [e.strip() for e in (env_task or "").split(",") if e.strip()] or [None]
    names = [_lookup(env_type, entry) for entry in entries]
    if len(names) == 1 and names[0] in TASKS:
        return [EvalTask(env_type, 0, names[0])]
    tasks: list[EvalTask] = []
    for entry, name in zip(entries, names):
        group = entry or env_type
        if name in SUITES:
            tasks += [EvalTask(group, i, task, kwargs) for i, (task, kwargs) in enumerate(suite_tasks(name))]
        else:
            tasks.append(EvalTask(group, 0, name))
    return eval_tasks(tasks)  # refuses an entry named twice


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
    types = sorted({t for t, _ in ENV_TASKS})
    parser.add_argument(
        "--env.type", dest="env_type", default="reach", help=f"{' | '.join(types)} (LeRobot's names; default reach)"
    )
    parser.add_argument("--env.task", dest="env_task", default=None, help=f"valid: {env_choices()}")
    parser.add_argument(
        "--env.obs_type",
        dest="obs_type",
        default=None,
        help="pusht: pixels_agent_pos (default; observation.image + state) | environment_state_agent_pos (keypoints); "
        "reach_color: environment_state (default) | targets_in_state (both targets' xyz appended to the state)",
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


def env_kwargs(args: argparse.Namespace) -> dict[str, int | str]:
    """make_env kwargs from the --env.* flags (a bad value raises SimError naming the flag)."""
    kwargs: dict[str, int | str] = {}
    if args.obs_type is not None:
        kwargs["obs_type"] = args.obs_type
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
