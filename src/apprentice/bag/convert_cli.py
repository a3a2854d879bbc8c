"""`apprentice convert`: rosbag2 bags (MCAP or sqlite3) -> one LeRobot v3.0 dataset, one episode per bag.

    apprentice convert --bags runs/ep_0001 runs/ep_0002 --contract config/contracts/so101.yaml --out data/pick
    apprentice convert --bags runs/ --contract c.yaml --out data/pick --workers 4   # every bag under runs/

With --workers > 1, bags are read, aligned and decoded in parallel processes (each to a temporary
memory-mapped episode next to --out); this process writes them into the dataset in bag order.
A bag that cannot be converted is reported and skipped; episodes already written stay.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.bag.convert import EpisodeReport, convert_bag, iter_episode
from apprentice.bag.errors import BagError
from apprentice.contract import Contract, ContractError, load_contract

log = logging.getLogger("apprentice.convert")


def find_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Expand arguments: a bag dir/file is itself; any other directory yields the bags below it, sorted."""
    bags: list[Path] = []
    for p in map(Path, paths):
        if (
            (p.is_file() and p.suffix in (".mcap", ".db3"))
            or (p / "metadata.yaml").is_file()
            or (p.is_dir() and any(p.glob("*.mcap")))
        ):
            bags.append(p)
        elif p.is_dir():
            found = sorted({m.parent for m in p.rglob("metadata.yaml")})
            if not found:
                raise BagError(f"{p}: no rosbag2 bag (metadata.yaml) found below this directory")
            bags.extend(found)
        else:
            raise BagError(f"bag {p} does not exist")
    return bags


def open_writer(out: Path, contract: Contract, vcodec: str, append: bool) -> Any:
    from apprentice.dataset import DatasetWriter

    if out.exists():
        if not append:
            raise BagError(f"{out} exists; pass --append to add episodes to it, or choose a new --out")
        writer = DatasetWriter.open(out)
        have = {k: (v["dtype"], list(v["shape"])) for k, v in writer.features.items()}
        want = {k: (v["dtype"], list(v["shape"])) for k, v in contract.features.items()}
        if have != want:
            differ = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise BagError(f"{out} has other features than {contract.source} (differ: {differ})")
        return writer
    return DatasetWriter.create(
        out, features=contract.features, fps=contract.fps, robot_type=contract.robot_type, vcodec=vcodec
    )


def _prepare(bag: Path, contract_path: str, time_source: str, tmp_root: str) -> tuple[EpisodeReport, str]:
    """Worker process: align and decode one bag into .npy files (images memory-mapped)."""
    contract = load_contract(contract_path)
    report, frames = iter_episode(bag, contract, time_source)
    tmp = Path(tempfile.mkdtemp(prefix="episode-", dir=tmp_root))
    arrays = {
        s.key: np.lib.format.open_memmap(
            tmp / f"{s.key}.npy",
            mode="w+",
            dtype=np.uint8 if s.is_image else s.dtype,
            shape=(report.frames, *s.shape),
        )
        for s in contract.specs
    }
    for i, frame in enumerate(frames):
        for key, arr in arrays.items():
            arr[i] = frame[key]
    for arr in arrays.values():
        arr.flush()
    return report, str(tmp)


def _load_frames(tmp: Path, keys: list[str], n: int) -> Iterator[dict[str, np.ndarray]]:
    arrays = {k: np.load(tmp / f"{k}.npy", mmap_mode="r") for k in keys}
    for i in range(n):
        yield {k: np.asarray(a[i]) for k, a in arrays.items()}


def _write_prepared(writer: Any, contract: Contract, report: EpisodeReport, tmp: Path, task: str) -> None:
    try:
        for frame in _load_frames(tmp, [s.key for s in contract.specs], report.frames):
            writer.add_frame(frame)
        report.episode_index = writer.save_episode(task=task)
    except BaseException:
        writer.clear_episode_buffer()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def convert_many(
    bags: Sequence[Path],
    contract_path: str | Path,
    out: Path,
    *,
    task: str | None = None,
    vcodec: str = "libsvtav1",
    workers: int = 1,
    time_source: str = "header",
    append: bool = False,
) -> tuple[list[EpisodeReport], list[str]]:
    """Convert bags in order; returns (reports of saved episodes, error messages of skipped bags)."""
    contract = load_contract(contract_path)
    task = task or contract.task
    if not task:
        raise BagError(f"no task: set 'task' in {contract.source} or pass --task")
    writer = open_writer(out, contract, vcodec, append)
    reports: list[EpisodeReport] = []
    errors: list[str] = []
    try:
        if workers <= 1:
            for bag in bags:
                try:
                    reports.append(convert_bag(bag, contract, writer, task=task, time_source=time_source))
                    log.info("%s", reports[-1].summary())
                except (BagError, ContractError) as exc:
                    errors.append(str(exc))
                    log.error("skipped: %s", exc)
            return reports, errors
        tmp_root = Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures: list[Future] = [
                    pool.submit(_prepare, b, str(contract_path), time_source, str(tmp_root)) for b in bags
                ]
                for bag, fut in zip(bags, futures):
                    try:
                        report, tmp = fut.result()
                        _write_prepared(writer, contract, report, Path(tmp), task)
                        reports.append(report)
                        log.info("%s", report.summary())
                    except (BagError, ContractError) as exc:
                        errors.append(f"{bag}: {exc}" if str(bag) not in str(exc) else str(exc))
                        log.error("skipped: %s", errors[-1])
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)
    finally:
        writer.finalize()
    return reports, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apprentice convert", description=__doc__.split("\n")[0])
    parser.add_argument("--bags", nargs="+", required=True, help="bag directories/files, or folders holding bags")
    parser.add_argument("--contract", required=True, help="contract YAML (config/contracts/*.yaml)")
    parser.add_argument("--out", required=True, help="dataset root to create (or extend with --append)")
    parser.add_argument("--append", action="store_true", help="add episodes to an existing dataset")
    parser.add_argument("--task", default=None, help="task string (default: the contract's task)")
    parser.add_argument("--vcodec", default="libsvtav1", choices=["libsvtav1", "h264"], help="video codec")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes reading/decoding bags")
    parser.add_argument(
        "--time-source",
        default="header",
        choices=["header", "log"],
        help="align on header stamps (default) or on receive (log) times",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        bags = find_bags(args.bags)
        reports, errors = convert_many(
            bags,
            args.contract,
            Path(args.out),
            task=args.task,
            vcodec=args.vcodec,
            workers=args.workers,
            time_source=args.time_source,
            append=args.append,
        )
    except (BagError, ContractError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    frames = sum(r.frames for r in reports)
    print(
        f"converted {len(reports)}/{len(bags)} bags ({frames} frames) into {args.out}"
        + (f"; {len(errors)} skipped (see above)" if errors else "")
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
