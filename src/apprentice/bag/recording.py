"""Episode recording without ROS: one MCAP bag per episode, converted to the dataset in the background.

Layout: `<bags_dir>/episode_000007/{episode_000007_0.mcap, metadata.yaml}` plus `journal.jsonl`, which
records what happened to each bag (recorded, converting, converted, rejected, discarded, salvaged).
Crash safety comes from that split: a closed bag is complete on disk; a dataset episode is complete when
`save_episode` returns; on restart (`resume`) a bag without metadata.yaml is salvaged (and left out of
the dataset, with a message) and a closed bag not yet in the dataset is converted again.

The recorder node feeds messages (`on_message`), ticks time (`tick`) and calls the episode controls;
everything here is plain Python, tested without rclpy.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprentice.bag.convert import convert_bag
from apprentice.bag.convert_cli import open_writer
from apprentice.bag.errors import BagError
from apprentice.bag.salvage import is_complete, salvage
from apprentice.bag.sentry import SentryBuffer
from apprentice.bag.writer import BagWriter
from apprentice.contract import Contract, ContractError
from apprentice.dataset import DatasetError

log = logging.getLogger("apprentice.record")
STATES = ["IDLE", "WARMUP", "RECORDING", "RESETTING", "SAVING", "DONE", "ERROR"]
IDLE, WARMUP, RECORDING, RESETTING, SAVING, DONE, ERROR = range(7)
_BAG_RE = re.compile(r"^episode_(\d{6})$")


@dataclass
class RecordConfig:
    """A recording session (lerobot-record's --dataset.* options, plus where bags go)."""

    root: Path
    bags_dir: Path | None = None  # default: <root>_bags next to the dataset
    num_episodes: int = 0  # 0 = until stopped
    episode_time_s: float = 60.0  # 0 = until stop_episode
    reset_time_s: float = 60.0
    warmup_time_s: float = 0.0
    task: str | None = None
    autostart: bool = True  # run warm-up/record/reset cycles by itself (CLI); False = services only
    resume: bool = False
    vcodec: str = "libsvtav1"
    compression: str = "none"
    # False when a policy produces the action only while an episode records (`apprentice record -p`):
    # the session starts once the observations flow and the action topic has a publisher (the policy is
    # loaded), not waiting for an action message that cannot come before the first episode.
    wait_for_action: bool = True
    # > 0: sentry mode — record continuously into a rolling window of this many seconds and save the
    # window as an episode only when triggered (stop_episode / the trigger topic); nothing else is saved.
    sentry_window_s: float = 0.0
    topic_types: dict[str, str] = field(default_factory=dict)  # topic -> type, for extra topics

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.bags_dir = Path(self.bags_dir) if self.bags_dir else self.root.with_name(self.root.name + "_bags")
        for name in ("episode_time_s", "reset_time_s", "warmup_time_s", "num_episodes", "sentry_window_s"):
            if getattr(self, name) < 0:
                raise BagError(f"{name} must be >= 0, got {getattr(self, name)}")


class Recorder:
    """State machine + bag writer + background converter for one recording session."""

    def __init__(self, config: RecordConfig, contract: Contract, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.contract, self._clock = config, contract, clock
        self.task = config.task or contract.task
        if not self.task:
            raise BagError(f"no task: set 'task' in {contract.source} or pass --dataset.single_task")
        self.topic_types = {s.topic: s.msg_type for s in contract.specs}
        self.topic_types.update(config.topic_types)
        self.topic_reliability: dict[str, str] = {}  # as the node subscribed (publishers' offer), for the bag
        self.bag_names: dict[str, str] = {}  # contract topic -> name in the bag (the node's resolved name)
        self._lock = threading.RLock()
        self.state, self._state_since = IDLE, clock()
        self.bag: BagWriter | None = None
        self.frames = 0
        self.episodes_saved = 0
        self.episodes_recorded = 0  # closed bags handed to the converter this session
        self.dropped_ticks = 0
        self.message = ""
        self._next_seq = 0
        self._queue: queue.Queue[tuple[Path, str] | None] = queue.Queue()
        self._pending = 0
        # The last saved bag waits out the reset before conversion, so that "re-record" during the reset
        # can still take it back (lerobot saves an episode only after its reset period).
        self._held: tuple[Path, str] | None = None
        self._session_started = False
        self.holds: set[str] = set()  # warm-up/reset phases do not end while a reason is in here
        self.seen: set[str] = set()  # topics that delivered a message; the timed session waits for all
        self.published: set[str] = set()  # topics with a publisher (the node says), for wait_for_action=False
        self._writer: Any = None
        self._thread: threading.Thread | None = None
        self.listeners: list[Callable[[], None]] = []  # called after every state change
        self.sentry = SentryBuffer(config.sentry_window_s) if config.sentry_window_s > 0 else None
        self._trigger = False  # last value of the sentry trigger signal (a rising edge saves)
        self.fault = ""  # latched fault of the policy driving the episodes ('' = none), shown in the status

    # ---- session ------------------------------------------------------------------------------------
    @property
    def bags_dir(self) -> Path:
        assert self.config.bags_dir is not None
        return self.config.bags_dir

    def open(self) -> list[str]:
        """Prepare dataset and bags dir, recover what a crashed session left; returns recovery messages."""
        cfg = self.config
        if cfg.root.exists() and not cfg.resume:
            raise BagError(f"dataset {cfg.root} exists; pass --resume to add episodes, or choose another root")
        self._writer = open_writer(cfg.root, self.contract, cfg.vcodec, append=True)  # checks the features
        self.bags_dir.mkdir(parents=True, exist_ok=True)
        notes = self._recover()
        self._thread = threading.Thread(target=self._convert_loop, name="episode-converter", daemon=True)
        self._thread.start()
        return notes

    def start_session(self) -> None:
        """Begin the timed warm-up/record/reset cycle (autostart); `tick` calls it once every required
        input has delivered a message."""
        with self._lock:
            if not self.config.autostart or self._session_started:
                return
            self._session_started = True
            if self.config.warmup_time_s > 0:
                self._set_state(WARMUP)
            else:
                self._begin_episode()

    def _journal(self, **event: Any) -> None:
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

    def _recover(self) -> list[str]:
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
                self._journal(bag=bag.name, event="salvaged", messages=count)
            elif event == "converting" and self._writer.num_episodes > journal[bag.name]["episode_index"]:
                self._journal(bag=bag.name, event="converted", episode_index=journal[bag.name]["episode_index"])
                note = f"{bag.name}: episode {journal[bag.name]['episode_index']} was saved before the crash"
            elif event in ("recorded", "converting", None):
                self._enqueue(bag, journal.get(bag.name, {}).get("task") or self.task)
                note = f"{bag.name}: recorded but not yet in the dataset; converting it now"
            else:
                continue
            log.warning("%s", note)
            notes.append(note)
        return notes

    def close(self) -> None:
        """End the session: save the episode being recorded, wait for conversions, finalize the dataset."""
        with self._lock:
            if self.state == RECORDING and self.bag is not None:  # sentry: an untriggered window is dropped
                self._close_bag(keep=True)
            self._release_held()
            self._set_state(DONE)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.finalize()
            self._writer = None

    # ---- messages and time --------------------------------------------------------------------------
    def register_topic(self, topic: str, msg_type: str) -> None:
        """Record `topic` too (extra topics whose type the node learns from the graph)."""
        with self._lock:
            self.topic_types[topic] = msg_type
            if self.bag is not None:
                self.bag.add_topic(
                    self.bag_names.get(topic, topic), msg_type, self.topic_reliability.get(topic, "reliable")
                )

    def on_message(self, topic: str, data: bytes, log_time_ns: int) -> None:
        """A serialized message arrived (log time = receive time on the node's clock)."""
        self.seen.add(topic)
        with self._lock:
            if self.state != RECORDING or topic not in self.topic_types:
                return
            if self.sentry is not None:
                self.sentry.add(self.bag_names.get(topic, topic), data, log_time_ns)
                return
            if self.bag is None:
                return
            try:
                self.bag.write(self.bag_names.get(topic, topic), data, log_time_ns)
            except OSError as exc:  # disk full, quota, file size limit: stop, keep what is on disk
                self.message = (
                    f"writing {self.bag.path} failed: {exc}; free space, then restart with --resume "
                    "(saved episodes are safe; this bag will be salvaged)"
                )
                log.error("%s", self.message)
                self.bag = None  # not closed: closing writes more; restart salvages it
                self._set_state(ERROR)
                return
            if topic == self.contract.primary.topic:
                self.frames += 1

    def tick(self) -> None:
        """Advance timed phases (call a few times per second)."""
        cfg = self.config
        if not self._session_started and self._ready_to_start():
            self.start_session()  # data flows on every input: the first episode does not start blind
        with self._lock:
            elapsed = self._clock() - self._state_since
            if self.holds and self.state in (WARMUP, RESETTING):
                return  # e.g. the reset service has not answered yet
            if self.state == WARMUP and elapsed >= cfg.warmup_time_s:
                self._begin_episode()
            elif self.state == RECORDING and cfg.episode_time_s and elapsed >= cfg.episode_time_s and not self.sentry:
                self.stop_episode()
            elif self.state == RESETTING and elapsed >= cfg.reset_time_s and cfg.autostart:
                self._begin_episode()

    def _ready_to_start(self) -> bool:
        """Every awaited topic delivered; an action that only flows during episodes (read from the command
        topic, or `wait_for_action` off) needs a publisher at least — the policy node is up."""
        action = self.contract.action.topic
        awaited = self.awaited_topics if self.config.wait_for_action else self.awaited_topics - {action}
        if action in awaited:
            return awaited <= self.seen
        return awaited <= self.seen and action in self.published | self.seen

    @property
    def awaited_topics(self) -> set[str]:
        """Required topics the timed session waits for. An action read from the command topic (evaluation /
        DAgger contracts: the executed command is the action) is left out: the policy node publishes it
        only while an episode records, so waiting for it would never end."""
        action = self.contract.action
        return {
            s.topic
            for s in self.contract.specs
            if s.required and not (s is action and s.topic == self.contract.command_topic)
        }

    # ---- episode controls (services / keys) ---------------------------------------------------------
    def start_episode(self, task: str = "") -> tuple[bool, str, int]:
        with self._lock:
            if task:
                self.task = task
            if self.state == RECORDING:
                return False, "already recording; stop_episode first", self.episode_index
            if self.state in (DONE, ERROR):
                return False, f"session is {STATES[self.state]}; start a new one", self.episode_index
            self._begin_episode()
            if self.sentry is not None:
                return True, f"sentry: keeping the last {self.config.sentry_window_s:g} s", self.episode_index
            return True, f"recording episode {self.episode_index} into {self.bag.path}", self.episode_index  # type: ignore[union-attr]

    def stop_episode(self) -> tuple[bool, str]:
        """Save the episode being recorded (right arrow); during a reset, end the reset early."""
        with self._lock:
            if self.state == RESETTING:
                self._state_since = -1e18  # the next tick starts the next episode
                return True, "reset ended early"
            if self.state != RECORDING:
                return False, f"not recording (state {STATES[self.state]})"
            if self.sentry is not None:
                return self._save_sentry()
            done = self.config.num_episodes and self.episodes_recorded + 1 >= self.config.num_episodes
            resetting = self.config.autostart and not done
            bag = self._close_bag(keep=True, hold=resetting)
            self._set_state(DONE if done else (RESETTING if resetting else IDLE))
            if resetting:
                return True, f"saved {bag}; converted when the reset ends (re-record now to drop it)"
            return True, f"saved {bag}; converting in the background"

    def rerecord_episode(self) -> tuple[bool, str]:
        """Drop the episode being recorded — or, during the reset, the one just recorded — and record it
        again after the reset (left arrow), as lerobot-record does."""
        with self._lock:
            if self.state == RESETTING and self._held is not None:
                bag, _ = self._held
                self._held = None
                shutil.rmtree(bag, ignore_errors=True)
                self._journal(bag=bag.name, event="discarded")
                self.episodes_recorded -= 1
                return True, f"{bag.name} dropped; it will be recorded again after the reset"
            if self.state != RECORDING:
                return False, f"nothing to re-record (state {STATES[self.state]}); saved episodes stay"
            if self.sentry is not None:
                self.sentry.clear()
                return True, "sentry window dropped"
            self._close_bag(keep=False)
            self._set_state(RESETTING if self.config.autostart else IDLE)
            return True, "episode dropped; it will be recorded again"

    def discard_episode(self) -> tuple[bool, str]:
        with self._lock:
            if self.state != RECORDING:
                return False, f"not recording (state {STATES[self.state]})"
            if self.sentry is not None:
                self.sentry.clear()
                return True, "sentry window dropped"
            self._close_bag(keep=False)
            self._set_state(IDLE)
            return True, "episode discarded"

    def stop_session(self) -> None:
        """Escape: save the current episode (as lerobot does) and finish."""
        with self._lock:
            if self.state == RECORDING and self.bag is not None:  # sentry: an untriggered window is dropped
                self._close_bag(keep=True)
            self._release_held()
            self._set_state(DONE)

    def trigger(self, value: bool) -> tuple[bool, str] | None:
        """The sentry trigger signal (e.g. a success topic): its rising edge saves the window."""
        rising = value and not self._trigger
        self._trigger = value
        if not rising or self.sentry is None:
            return None
        return self.stop_episode()

    def _save_sentry(self) -> tuple[bool, str]:
        """The buffered window -> one bag -> the converter; recording goes on into an empty window."""
        assert self.sentry is not None
        primary = self.bag_names.get(self.contract.primary.topic, self.contract.primary.topic)
        if self.sentry.count(primary) < 2:
            return False, f"sentry: nothing buffered on {primary} yet; no episode saved"
        messages = self.sentry.drain()
        self._open_bag()
        assert self.bag is not None
        for m in messages:
            self.bag.write(m.topic, m.data, m.log_time_ns)
        self.frames = sum(1 for m in messages if m.topic == primary)
        bag = self._close_bag(keep=True)
        done = self.config.num_episodes and self.episodes_recorded >= self.config.num_episodes
        self._set_state(DONE if done else RECORDING)
        return True, f"saved the last {self.config.sentry_window_s:g} s as {bag.name}; converting in the background"

    # ---- internals ----------------------------------------------------------------------------------
    def _set_state(self, state: int) -> None:
        self.state, self._state_since = state, self._clock()
        for fn in self.listeners:
            fn()

    def _begin_episode(self) -> None:
        self._release_held()
        if self.sentry is not None:
            self.sentry.clear()
        else:
            self._open_bag()
        self._set_state(RECORDING)

    def _open_bag(self) -> None:
        path = self.bags_dir / f"episode_{self._next_seq:06d}"
        self._next_seq += 1
        self.bag = BagWriter(
            path,
            compression=self.config.compression,
            custom_data={"apprentice.task": self.task, "apprentice.contract": self.contract.source},
        )
        for topic, msg_type in self.topic_types.items():
            self.bag.add_topic(
                self.bag_names.get(topic, topic), msg_type, self.topic_reliability.get(topic, "reliable")
            )
        self.frames = 0

    def _close_bag(self, keep: bool, hold: bool = False) -> Path:
        assert self.bag is not None
        path = self.bag.close()
        self.bag = None
        if keep:
            self._journal(bag=path.name, event="recorded", task=self.task, frames=self.frames)
            self.episodes_recorded += 1
            if hold:
                self._held = (path, self.task)
            else:
                self._enqueue(path, self.task)
        else:
            shutil.rmtree(path, ignore_errors=True)
            self._journal(bag=path.name, event="discarded")
        return path

    def _release_held(self) -> None:
        if self._held is not None:
            self._enqueue(*self._held)
            self._held = None

    def _enqueue(self, bag: Path, task: str) -> None:
        self._pending += 1
        self._queue.put((bag, task))

    def _convert_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            bag, task = item
            index = self._writer.num_episodes
            self._journal(bag=bag.name, event="converting", episode_index=index)
            try:
                report = convert_bag(bag, self.contract, self._writer, task=task)
            except (BagError, ContractError, DatasetError, OSError) as exc:
                self._journal(bag=bag.name, event="rejected", message=str(exc))
                self.message = f"{bag.name} not added to the dataset: {exc}"
                log.error("%s", self.message)
            else:
                self._journal(
                    bag=bag.name,
                    event="converted",
                    episode_index=report.episode_index,
                    frames=report.frames,
                    dropped=report.dropped,
                )
                self.episodes_saved += 1
                self.dropped_ticks = report.dropped
                self.message = report.summary()
                log.info("%s", self.message)
            finally:
                self._pending -= 1
            for fn in self.listeners:
                fn()

    def wait_converted(self, timeout_s: float = 60.0) -> bool:
        """Block until every queued bag is converted (tests, shutdown)."""
        end = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < end:
            time.sleep(0.02)
        return self._pending == 0

    # ---- status -------------------------------------------------------------------------------------
    @property
    def episode_index(self) -> int:
        """Dataset index the current (or next) episode will get if every queued bag converts."""
        saved = self._writer.num_episodes if self._writer is not None else 0
        return saved + self._pending

    def status(self) -> dict[str, Any]:
        cfg = self.config
        with self._lock:
            elapsed = self._clock() - self._state_since
            limit = {WARMUP: cfg.warmup_time_s, RECORDING: cfg.episode_time_s, RESETTING: cfg.reset_time_s}
            total = limit.get(self.state, 0.0)
            return {
                "state": self.state,
                "state_name": STATES[self.state],
                "episode_index": self.episode_index,
                "num_episodes": cfg.num_episodes,
                "episodes_saved": self.episodes_saved,
                "elapsed_s": float(elapsed),
                "remaining_s": float(max(0.0, total - elapsed)) if total else -1.0,
                "frames": self._frames_now(),
                "dropped_ticks": self.dropped_ticks,
                "task": self.task,
                "bag_path": str(self.bag.path) if self.bag else "",
                "dataset_root": str(cfg.root),
                "message": self.message,
                "fault": self.fault,
            }

    def _frames_now(self) -> int:
        if self.sentry is not None and self.state == RECORDING:
            return self.sentry.count(self.bag_names.get(self.contract.primary.topic, self.contract.primary.topic))
        return self.frames
