"""`apprentice eval`: evaluate a policy in simulation, as lerobot-eval (its dotted flags, its eval_info.json).

    apprentice eval --policy.path=outputs/train/checkpoints/last/pretrained_model --env.type=reach \\
        --eval.n_episodes=50 --eval.batch_size=10 --output_dir=outputs/eval/reach
    apprentice eval --policy.path=... --env.type=aloha --env.task=AlohaTransferCube-v0,AlohaInsertion-v0 \\
        --eval.use_async_envs=true                                                 # two tasks, worker processes
    apprentice eval --policy.type=expert --env.type=aloha --eval.n_episodes=50     # scripted baseline
    apprentice eval -p outputs/train/checkpoints/last/pretrained_model --env.type=pusht --eval.n_episodes=50 \
        --eval.batch_size=10                                                        # the seed's eval.py spelling
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from apprentice.eval_info import write_eval_info
from apprentice.pretrained_path import PretrainedPathError, check_pretrained_dir
from apprentice.sim import SimError
from apprentice.sim.cli import add_env_arguments, env_kwargs, resolve_eval_tasks
from apprentice.sim.eval import DEFAULT_EVAL_SEED, ExpertPolicy, ZeroPolicy, action_mse, evaluate


def _bool(text: str) -> bool:
    """draccus-style booleans, as lerobot's CLI takes them: --eval.use_async_envs=true."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "yes")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apprentice eval", description=__doc__.split("\n")[0])
    parser.add_argument(
        "-p",
        "--policy.path",
        "--pretrained-policy-name-or-path",
        dest="policy_path",
        default=None,
        help="a pretrained_model/ directory (never a .pt pickle)",
    )
    parser.add_argument(
        "--policy.type",
        dest="policy_type",
        default=None,
        choices=["expert", "zero"],
        help="a built-in baseline instead of --policy.path: the scripted expert, or all-zero actions",
    )
    parser.add_argument("--policy.device", dest="device", default="cpu")
    add_env_arguments(parser)
    parser.add_argument("--eval.n_episodes", dest="n_episodes", type=int, default=50, help="episodes per task")
    parser.add_argument(
        "--eval.batch_size",
        dest="batch_size",
        type=int,
        default=10,
        help="envs stepped together (a gymnasium vector env), one batched policy call per step; 0: automatic",
    )
    parser.add_argument(
        "--eval.use_async_envs",
        dest="use_async_envs",
        type=_bool,
        default=False,
        help="true: AsyncVectorEnv, one worker process per env (false: SyncVectorEnv in this process)",
    )
    parser.add_argument(
        "--eval.max_episodes_rendered", dest="max_rendered", type=int, default=10, help="videos per task"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_EVAL_SEED, help="seed of episode 0 of every task; then seed+1, ..."
    )
    parser.add_argument("--output_dir", default=None, help="where eval_info.json and videos/ go")
    parser.add_argument(
        "--dataset.root",
        dest="dataset_root",
        default=None,
        help="also report action_mse on this dataset's --dataset.episodes (a held-out split)",
    )
    parser.add_argument(
        "--dataset.episodes",
        dest="dataset_episodes",
        default=None,
        help="comma-separated episode indices, e.g. 45,46,47,48,49 (default: all)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if (args.policy_path is None) == (args.policy_type is None):
        print("apprentice eval: error: give exactly one of --policy.path or --policy.type", file=sys.stderr)
        return 2
    errors: tuple[type[Exception], ...] = (SimError,)
    if args.policy_path is not None:
        try:
            check_pretrained_dir(args.policy_path)
        except PretrainedPathError as exc:
            print(f"apprentice eval: error: {exc}", file=sys.stderr)
            return 1
        # A policy whose inputs the env does not give (trained on another task), or a dataset that is
        # not one, fails with its own package's error: report it like ours, without a traceback.
        from apprentice.dataset import DatasetError
        from apprentice.policies import PolicyError

        errors = (SimError, PolicyError, DatasetError)
    try:
        tasks = resolve_eval_tasks(args.env_type, args.env_task)
        kwargs = env_kwargs(args)
        if args.policy_type == "expert":
            policy = ExpertPolicy
        elif args.policy_type == "zero":
            policy = ZeroPolicy.for_envs
        else:
            from apprentice.policies import load_policy

            policy = load_policy(args.policy_path, device=args.device)
            policy.eval()
        info = evaluate(
            policy,
            tasks,
            n_episodes=args.n_episodes,
            batch_size=args.batch_size,
            seed=args.seed,
            output_dir=args.output_dir,
            max_episodes_rendered=args.max_rendered,
            env_kwargs=kwargs,
            use_async_envs=args.use_async_envs,
            log=lambda line: print(line, file=sys.stderr),
        )
        if args.dataset_root is not None:
            if args.policy_path is None:
                raise SimError("--dataset.root (action_mse) needs a learned policy: pass --policy.path")
            episodes = [int(e) for e in args.dataset_episodes.split(",")] if args.dataset_episodes else None
            info["overall"]["action_mse"] = action_mse(policy, args.dataset_root, episodes)
            if args.output_dir is not None:
                write_eval_info(args.output_dir, info)
    except errors as exc:
        print(f"apprentice eval: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info["overall"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
