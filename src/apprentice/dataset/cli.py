"""`apprentice dataset info|verify|repair|push|pull|visualize` — inspect, check, fix and share datasets.

Every failure on bad input is one line on stderr naming the file and the problem (exit code 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from apprentice.dataset.format import DatasetError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apprentice dataset", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")

    p = sub.add_parser("info", help="summary of a dataset: fps, episodes, frames, features, files")
    p.add_argument("root", type=Path)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("verify", help="check every invariant; names the first violation")
    p.add_argument("root", type=Path)

    p = sub.add_parser("repair", help="drop what an interrupted writer left; recompute info/stats")
    p.add_argument("root", type=Path)

    p = sub.add_parser("push", help="upload to a Hub dataset repo and tag the codebase version (v3.0)")
    # The seed's push_dataset_to_hub.py spellings too: --raw-dir ROOT --repo-id OWNER/NAME --raw-format lerobot.
    p.add_argument("root", type=Path, nargs="?", help="dataset directory (or --raw-dir)")
    p.add_argument("repo_id", nargs="?", help="owner/name (or --repo-id)")
    p.add_argument("--raw-dir", dest="raw_dir", type=Path, default=None, help="= root")
    p.add_argument("--repo-id", dest="repo_id_flag", default=None, help="= repo_id")
    p.add_argument("--raw-format", dest="raw_format", default="lerobot", help="only 'lerobot' (a v3.0 dataset)")
    p.add_argument("--tags", nargs="+", default=[], help="dataset card tags (a fresh README.md carries them)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--branch", default=None, help="push to this branch instead of main")

    p = sub.add_parser("pull", help="download a Hub dataset at its v3.0 revision")
    p.add_argument("repo_id", help="owner/name")
    p.add_argument("--root", type=Path, default=None, help="where to put it (default: the HF cache)")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: v3.0)")

    p = sub.add_parser("visualize", help="write an HTML page (video + state/action plots) of one episode")
    # The seed's visualize_dataset.py spellings too: --repo-id OWNER/NAME [--root DIR] --episode-index N.
    p.add_argument("root", type=Path, nargs="?", help="dataset directory (or --root, or --repo-id)")
    p.add_argument("--root", dest="root_flag", type=Path, default=None, help="= root; with --repo-id: <root>/<repo-id>")
    p.add_argument("--repo-id", dest="repo_id", default=None, help="a pulled dataset: $HF_LEROBOT_HOME/<repo-id>")
    p.add_argument("--episode", "--episode-index", dest="episode", type=int, default=0)
    p.add_argument("--output", type=Path, default=None, help="output .html (default: episode_<N>.html)")
    return parser


def _info(root: Path, as_json: bool) -> int:
    from apprentice.dataset.metadata import DatasetMeta, LocalStore

    meta = DatasetMeta.load(LocalStore(root))
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    summary = {
        "root": str(root), "codebase_version": meta.info["codebase_version"],
        "robot_type": meta.info.get("robot_type"), "fps": meta.fps, "episodes": meta.total_episodes,
        "frames": meta.total_frames, "duration_s": round(meta.total_frames / meta.fps, 3),
        "tasks": meta.tasks,
        "features": {k: {"dtype": ft["dtype"], "shape": ft["shape"]} for k, ft in meta.features.items()},
        "files": len(files), "size_mb": round(sum(p.stat().st_size for p in files) / 2**20, 3),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{root}  LeRobotDataset {summary['codebase_version']}  robot_type={summary['robot_type']}")
    print(f"  {summary['episodes']} episodes, {summary['frames']} frames at {summary['fps']} fps "
          f"({summary['duration_s']} s), {summary['files']} files, {summary['size_mb']} MB")
    for i, task in enumerate(meta.tasks):
        print(f"  task {i}: {task}")
    for key, ft in meta.features.items():
        print(f"  {key:<32} {ft['dtype']:<8} {ft['shape']}")
    return 0


def _visualize(root: Path, episode: int, output: Path | None) -> int:
    from apprentice.dataset.visualize import write_episode_html

    out = write_episode_html(root, episode, output or Path(f"episode_{episode}.html"))
    print(out)
    return 0


def _one_of(parser: argparse.ArgumentParser, positional: object, flag: object, names: str) -> object:
    if positional is not None and flag is not None and positional != flag:
        parser.error(f"{names}: give it once (the positional or the flag)")
    return positional if positional is not None else flag


def _resolve_seed_spellings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fold the seed's flags into the positionals, so every spelling runs the same command."""
    if args.action == "push":
        if args.raw_format != "lerobot":
            raise DatasetError(
                f"--raw-format {args.raw_format}: only 'lerobot' (a LeRobot v3.0 dataset directory) is pushed; "
                "record it with `apprentice record`, convert bags with `apprentice convert`, then push that root"
            )
        args.root = _one_of(parser, args.root, args.raw_dir, "root / --raw-dir")
        args.repo_id = _one_of(parser, args.repo_id, args.repo_id_flag, "repo_id / --repo-id")
        if args.root is None or args.repo_id is None:
            parser.error("push needs the dataset root (or --raw-dir) and the repo id (or --repo-id)")
    elif args.action == "visualize":
        if args.root_flag is not None and args.repo_id is not None:
            args.root_flag = args.root_flag / args.repo_id  # the seed's layout: <root>/<repo-id>, as record writes
        args.root = _one_of(parser, args.root, args.root_flag, "root / --root")
        if args.root is None and args.repo_id is not None:
            from apprentice.dataset.hub import default_root

            args.root = default_root(args.repo_id)
            if not args.root.exists():
                raise DatasetError(f"--repo-id {args.repo_id}: not in {args.root}; download it first with "
                                   f"`apprentice dataset pull {args.repo_id}` (or pass --root DIR)")
        if args.root is None:
            parser.error("visualize needs the dataset root (or --root, or --repo-id of a pulled dataset)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        _resolve_seed_spellings(parser, args)
        if args.action == "info":
            return _info(args.root, args.json)
        if args.action == "verify":
            from apprentice.dataset.verify import verify

            summary = verify(args.root)
            print(f"OK {summary['root']}: {summary['episodes']} episodes, {summary['frames']} frames, "
                  f"{summary['tasks']} tasks, {summary['files_checked']} files checked")
            return 0
        if args.action == "repair":
            from apprentice.dataset.recovery import repair

            actions = repair(args.root)
            for action in actions:
                print(f"repaired: {action}")
            print(f"OK {args.root}: " + ("nothing to repair" if not actions else f"{len(actions)} fixes"))
            return 0
        if args.action == "push":
            from apprentice.dataset.hub import push

            print(push(args.root, args.repo_id, private=args.private, branch=args.branch, tags=args.tags))
            return 0
        if args.action == "pull":
            from apprentice.dataset.hub import pull

            print(pull(args.repo_id, root=args.root, revision=args.revision))
            return 0
        return _visualize(args.root, args.episode, args.output)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
