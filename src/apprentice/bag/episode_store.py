"""A recording session's bags directory: one bag per episode, `journal.jsonl`, crash recovery, and the
background converter that turns closed bags into dataset episodes.

The journal records what happened to each bag (recorded, converting, converted, rejected, discarded,
salvaged); `recover` reads it back after a crash. The episode state machine (`recording.Recorder`)
decides when a bag opens and closes; this class owns what happens to it afterwards.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apprentice.bag.convert import convert_bag
from apprentice.bag.errors import BagError
from apprentice.bag.salvage import is_complete, salvage
from apprentice.contract import Contract, ContractError
from apprentice.dataset import DatasetError

log = logging.getLogger("apprentice.record")
_BAG_RE = re.compile(r"^episode_(\d{6})$")


class EpisodeStore:
    """Bags of one session and their way into the dataset. After each conversion `report(message)` gets its
    outcome (before `wait_converted` returns), then `changed()` runs, once the counts are up to date."""

    def __init__(
        self, bags_dir: Path, contract: Contract, report: Callable[[str], None], changed: Callable[[], None]
    ) -> None:
        self.bags_dir, self.contract, self._report, self._changed = bags_dir, contract, report, changed
        self.writer: Any = None  # the dataset writer, set by `start`
        self.episodes_saved = 0
        self.dropped_ticks = 0
        self._next_seq = 0
        self._queue: queue.Queue[tuple[Path, str] | None] = queue.Queue()
        self._pending = 0
        # The last saved bag waits out the reset before conversion, so that "re-record" during the reset
        # can still take it back (lerobot saves an episode only after its reset period).
        self._held: tuple[Path, str] | None = None
        self._thread: threading.Thread | None = None

    def start(self, writer: Any, default_task: str) -> list[str]:
        """Recover what a crashed session left, then start converting; returns recovery messages."""
        self.writer = writer
        self.bags_dir.mkdir(parents=True, exist_ok=True)
        notes = self._recover(default_task)
        self._thread = threading.Thread(target=self._convert_loop, name="episode-converter", daemon=True)
        self._thread.start()
        return notes

    def close(self) -> None:
        """Wait for the queued conversions, then finalize the dataset."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self.writer is not None:
            self.writer.finalize()
            self.writer = None

    @property
    def episode_index(self) -> int:
        """Dataset index the next bag will get if every queued bag converts."""
        saved = self.writer.num_episodes if self.writer is not None else 0
        return saved + self._pending

    # ---- bags ---------------------------------------------------------------------------------------
    def next_bag_path(self) -> Path:
        path = self.bags_dir / f"episode_{self._next_seq:06d}"
        self._next_seq += 1
        return path

    def keep(self, bag: Path, task: str, frames: int, hold: bool = False) -> None:
        """A closed bag is an episode: convert it now, or once the reset ends (`hold`)."""
        self.journal(bag=bag.name, event="recorded", task=task, frames=frames)
        if hold:
            self._held = (bag, task)
        else:
            self._enqueue(bag, task)

    def discard(self, bag: Path) -> None:
        shutil.rmtree(bag, ignore_errors=True)
        self.journal(bag=bag.name, event="discarded")

    def discard_held(self) -> Path | None:
        """Drop the bag waiting out the reset (re-record); None when none waits."""
        if self._held is None:
            return None
        bag, _ = self._held
        self._held = None
        self.discard(bag)
        return bag

    def release_held(self) -> None:
        if self._held is not None:
            self._enqueue(*self._held)
            self._held = None

    def wait_converted(self, timeout_s: float = 60.0) -> bool:
        """Block until every queued bag is converted (tests, shutdown)."""
        end = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < end:
            time.sleep(0.02)
        return self._pending == 0

    # ---- journal and recovery -----------------------------------------------------------------------
    def journal(self, **event: Any) -> None:
        event["time"] = time.time()
        with open(self.bags_dir / "journal.jsonl", "a") as f:
            f.write(json.dumps(event) + "\n")

    def _read_journal(self) -> dict[str, dict[str, Any]]:
        path = self.bags_dir / "journal.jsonl"
        last: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash; the bag's own state decides
                last[event["bag"]] = event
        return last

    def _recover(self, default_task: str) -> list[str]:
        notes: list[str] = []
        journal = self._read_journal()
        bags = sorted(p for p in self.bags_dir.iterdir() if p.is_dir() and _BAG_RE.match(p.name))
        if bags:
            self._next_seq = int(_BAG_RE.match(bags[-1].name).group(1)) + 1  # type: ignore[union-attr]
        for bag in bags:
            event = journal.get(bag.name, {}).get("event")
            if not is_complete(bag):
                kept, count = salvage(bag)
                note = f"{bag.name} was interrupted (recorder killed mid-episode): " + (
                    f"salvaged {count} messages into {kept}; not added to the dataset — add it with "
                    f"`apprentice convert --append`"
                    if kept
                    else "nothing readable; skipped"
                )
                self.journal(bag=bag.name, event="salvaged", messages=count)
            elif event == "converting" and self.writer.num_episodes > journal[bag.name]["episode_index"]:
                self.journal(bag=bag.name, event="converted", episode_index=journal[bag.name]["episode_index"])
                note = f"{bag.name}: episode {journal[bag.name]['episode_index']} was saved before the crash"
            elif event in ("recorded", "converting", None):
                self._enqueue(bag, journal.get(bag.name, {}).get("task") or default_task)
                note = f"{bag.name}: recorded but not yet in the dataset; converting it now"
            else:
                continue
            log.warning("%s", note)
            notes.append(note)
        return notes

    # ---- conversion ---------------------------------------------------------------------------------
    def _enqueue(self, bag: Path, task: str) -> None:
        self._pending += 1
        self._queue.put((bag, task))

    def _convert_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            bag, task = item
            index = self.writer.num_episodes
            self.journal(bag=bag.name, event="converting", episode_index=index)
            try:
                report = convert_bag(bag, self.contract, self.writer, task=task)
            except (BagError, ContractError, DatasetError, OSError) as exc:
                self.journal(bag=bag.name, event="rejected", message=str(exc))
                message = f"{bag.name} not added to the dataset: {exc}"
                log.error("%s", message)
                self._report(message)
            else:
                self.journal(
                    bag=bag.name,
                    event="converted",
                    episode_index=report.episode_index,
                    frames=report.frames,
                    dropped=report.dropped,
                )
                self.episodes_saved += 1
                self.dropped_ticks = report.dropped
                message = report.summary()
                log.info("%s", message)
                self._report(message)
            finally:
                self._pending -= 1
            self._changed()
