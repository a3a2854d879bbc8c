"""`apprentice dataset info|verify|repair|push|pull|convert-v21|visualize|<edit>` — inspect, check, fix, edit and share
datasets.

Edits (lerobot-edit-dataset's operations): delete-episodes, split, merge, remove-feature, modify-tasks,
recompute-stats, reencode-videos, convert-to-video; each writes to a new --out root or, with --in-place,
replaces the source by an atomic swap.

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

    p = sub.add_parser("convert-v21", help="convert a LeRobot v2.1 dataset (local or --repo-id) into a new v3.0 root")
    p.add_argument("src", type=Path, nargs="?", help="v2.1 root (with --repo-id: where to download it)")
    p.add_argument("--out", type=Path, required=True, help="new v3.0 root (must not exist)")
    p.add_argument("--repo-id", default=None, help="pull this Hub dataset's v2.1 revision first")
    p.add_argument("--revision", default=None, help="with --repo-id: branch, tag or commit (default: v2.1)")
    p.add_argument("--data-file-size-in-mb", type=float, default=100)
    p.add_argument("--video-file-size-in-mb", type=float, default=200)

    p = sub.add_parser("visualize", help="episode pages (video + state/action plots with a cursor): one HTML "
                       "file, a folder with an index, or served on 127.0.0.1")
    # The seed's visualize_dataset.py spellings too: --repo-id OWNER/NAME [--root DIR] --episode-index N.
    p.add_argument("root", type=Path, nargs="?", help="dataset directory (or --root, or --repo-id)")
    p.add_argument("--root", dest="root_flag", type=Path, default=None, help="= root; with --repo-id: <root>/<repo-id>")
    p.add_argument("--repo-id", dest="repo_id", default=None, help="a pulled dataset: $HF_LEROBOT_HOME/<repo-id>")
    p.add_argument("--episode", "--episode-index", dest="episode", type=int, default=0,
                   help="the episode to write (or, with --serve, to print)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=None, help="output .html (default: episode_<N>.html)")
    where.add_argument("--output-dir", type=Path, default=None,
                       help="write index.html + episode_<N>.html for --episodes (default: all) into this folder")
    where.add_argument("--serve", action="store_true", help="serve every episode's page on 127.0.0.1:--port")
    p.add_argument("--episodes", type=int, nargs="+", default=None, help="with --output-dir: these episodes only")
    p.add_argument("--port", type=int, default=9090, help="with --serve (default 9090; 0 picks a free port)")
    _add_edit_parsers(sub)
    return parser


def _add_edit_parsers(sub: argparse._SubParsersAction) -> None:
    def edit(name: str, help: str, *, sources: str = "one", in_place: bool = True) -> argparse.ArgumentParser:
        # lerobot's operation names (delete_episodes, …) are accepted too.
        aliases = [name.replace("-", "_")] if "-" in name else []
        p = sub.add_parser(name, aliases=aliases, help=help)
        p.set_defaults(edit=name)
        if sources == "many":
            p.add_argument("src", type=Path, nargs="+", help="dataset roots, merged in this order")
        else:
            p.add_argument("src", type=Path)
        p.add_argument("--out", type=Path, default=None, required=not in_place,
                       help="new root to write (must not exist or be empty)" if sources != "split"
                       else "directory to create; each split becomes OUT/NAME")
        if in_place:
            p.add_argument("--in-place", action="store_true", help="replace SRC (built beside it, then swapped)")
        return p

    p = edit("delete-episodes", "drop episodes; the rest are renumbered 0..N-1")
    p.add_argument("--episodes", nargs="+", required=True, metavar="N|N-M", help="e.g. 0 3 5 or 10-19")
    p = edit("split", "split into several datasets by fractions or episode lists", sources="split",
             in_place=False)
    p.add_argument("--splits", nargs="+", required=True, metavar="NAME=SPEC",
                   help="train=0.8 val=0.2 (fractions, in order) or train=0-39 val=40-49 (episode lists)")
    edit("merge", "concatenate datasets with the same fps, robot_type and features", sources="many",
         in_place=False)
    p = edit("remove-feature", "drop features (a camera's videos go with it)")
    p.add_argument("--features", nargs="+", required=True)
    p = edit("modify-tasks", "rename tasks: episode-task > replace > new-task > original")
    p.add_argument("--new-task", default=None, help="task for every frame not covered by the others")
    p.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"))
    p.add_argument("--episode-task", nargs=2, action="append", default=[], metavar=("N", "TASK"))
    p = edit("recompute-stats", "recompute stats from the data (numeric features; cameras with --images)")
    p.add_argument("--images", action="store_true", help="also decode frames for camera stats")
    for name, help in (("reencode-videos", "decode and encode every camera with new settings"),
                       ("convert-to-video", "store image columns as video (concatenated mp4 per camera)")):
        p = edit(name, help)
        p.add_argument("--vcodec", default="libsvtav1", help="libsvtav1 (lerobot's default) or h264")
        p.add_argument("--crf", type=int, default=30)
        p.add_argument("--gop", type=int, default=2, help="keyframe interval")
        p.add_argument("--preset", type=int, default=None)


def _edit(args: argparse.Namespace) -> int:
    from apprentice.dataset import edit

    out, in_place = args.out, getattr(args, "in_place", False)
    if args.edit == "delete-episodes":
        episodes = [e for spec in args.episodes for e in edit.parse_episode_list(spec)]
        dst = edit.delete_episodes(args.src, episodes, out=out, in_place=in_place)
    elif args.edit == "split":
        for name, root in edit.split_dataset(args.src, edit.parse_splits(args.splits), out=out).items():
            print(f"{name}: {root}")
        return 0
    elif args.edit == "merge":
        dst = edit.merge_datasets(args.src, out=out)
    elif args.edit == "remove-feature":
        dst = edit.remove_feature(args.src, args.features, out=out, in_place=in_place)
    elif args.edit == "modify-tasks":
        episode_tasks = {}
        for n, task in args.episode_task:
            if not n.isdigit():
                raise DatasetError(f"--episode-task {n!r} {task!r}: the first value is an episode index")
            episode_tasks[int(n)] = task
        dst = edit.modify_tasks(args.src, new_task=args.new_task, replacements=dict(args.replace),
                                episode_tasks=episode_tasks, out=out, in_place=in_place)
    elif args.edit == "recompute-stats":
        dst = edit.recompute_stats(args.src, images=args.images, out=out, in_place=in_place)
    else:
        op = edit.reencode_videos if args.edit == "reencode-videos" else edit.convert_image_to_video
        dst = op(args.src, vcodec=args.vcodec, crf=args.crf, gop=args.gop, preset=args.preset, out=out,
                 in_place=in_place)
    return _info(dst, as_json=False)


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


def _visualize(args: argparse.Namespace) -> int:
    from apprentice.dataset.visualize import write_episode_html, write_site

    if args.episodes is not None and args.output_dir is None:
        raise DatasetError("--episodes: only with --output-dir (with --serve every episode is served; a single "
                           "page takes --episode N)")
    if args.serve:
        from apprentice.dataset.visualize_serve import serve

        serve(args.root, args.port, args.episode)
        return 0
    if args.output_dir is not None:
        print(write_site(args.root, args.output_dir, args.episodes))
        return 0
    print(write_episode_html(args.root, args.episode, args.output or Path(f"episode_{args.episode}.html")))
    return 0


def _convert_v21(args: argparse.Namespace) -> int:
    from apprentice.dataset.convert_v21 import convert_v21, convert_v21_from_hub

    sizes = {"data_files_size_in_mb": args.data_file_size_in_mb, "video_files_size_in_mb": args.video_file_size_in_mb}
    if args.repo_id:
        summary = convert_v21_from_hub(args.repo_id, args.out, download_dir=args.src, revision=args.revision, **sizes)
    elif args.src is None:
        raise DatasetError("convert-v21: pass the v2.1 root (SRC) or --repo-id")
    else:
        summary = convert_v21(args.src, args.out, **sizes)
    for note in summary["reencoded"]:
        print(f"note: {note}")
    print(f"OK {summary['root']}: v3.0, {summary['episodes']} episodes, {summary['frames']} frames, "
          f"{summary['tasks']} tasks")
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
        if getattr(args, "edit", None):
            return _edit(args)
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
        if args.action == "convert-v21":
            return _convert_v21(args)
        return _visualize(args)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
