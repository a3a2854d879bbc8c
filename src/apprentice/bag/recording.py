"""Episode recording without ROS: one MCAP bag per episode, converted to the dataset in the background.

Layout: `<bags_dir>/episode_000007/{episode_000007_0.mcap, metadata.yaml}` plus `journal.jsonl`, which
records what happened to each bag (recorded, converting, converted, rejected, discarded, salvaged).
Crash safety comes from that split: a closed bag is complete on disk; a dataset episode is complete when
`save_episode` returns; on restart (`resume`) a bag without metadata.yaml is salvaged (and left out of
the dataset, with a message) and a closed bag not yet in the dataset is converted again.

This module is the episode state machine (warm-up/record/reset, the controls, sentry mode); the bags
directory, journal, recovery and background converter are `episode_store.EpisodeStore`. The recorder
node feeds messages (`on_message`), ticks time (`tick`) and calls the episode controls; everything here is
plain Python, tested without rclpy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprentice.bag.convert_cli import open_writer
from apprentice.bag.episode_store import EpisodeStore
from apprentice.bag.errors import BagError
from apprentice.bag.sentry import SentryBuffer
from apprentice.bag.writer import BagWriter
from apprentice.contract import Contract

log = logging.getLogger("apprentice.record")
STATES = ["IDLE", "WARMUP", "RECORDING", "RESETTING", "SAVING", "DONE", "ERROR"]
IDLE, WARMUP, RECORDING, RESETTING, SAVING, DONE, ERROR = range(7)


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
    """State machine + bag writer for one recording session; closed bags go to its `EpisodeStore`."""

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
        self.episodes_recorded = 0  # closed bags handed to the converter this session
        self.message = ""
        self._session_started = False
        self.holds: set[str] = set()  # warm-up/reset phases do not end while a reason is in here
        self.seen: set[str] = set()  # topics that delivered a message; the timed session waits for all
        self.published: set[str] = set()  # topics with a publisher (the node says), for wait_for_action=False
        self.listeners: list[Callable[[], None]] = []  # called after every state change and conversion
        assert config.bags_dir is not None  # __post_init__ fills it
        self.store = EpisodeStore(config.bags_dir, contract, report=self._report, changed=self._notify)
        self.sentry = SentryBuffer(config.sentry_window_s) if config.sentry_window_s > 0 else None
        self._trigger = False  # last value of the sentry trigger signal (a rising edge saves)
        self.fault = ""  # latched fault of the policy driving the episodes ('' = none), shown in the status

    # ---- session ------------------------------------------------------------------------------------
    @property
    def bags_dir(self) -> Path:
        return self.store.bags_dir

    @property
    def episodes_saved(self) -> int:
        return self.store.episodes_saved

    @property
    def dropped_ticks(self) -> int:
        return self.store.dropped_ticks

    def open(self) -> list[str]:
        """Prepare dataset and bags dir, recover what a crashed session left; returns recovery messages."""
        cfg = self.config
        if cfg.root.exists() and not cfg.resume:
            raise BagError(f"dataset {cfg.root} exists; pass --resume to add episodes, or choose another root")
        writer = open_writer(cfg.root, self.contract, cfg.vcodec, append=True)  # checks the features
        return self.store.start(writer, self.task)

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

    def close(self) -> None:
        """End the session: save the episode being recorded, wait for conversions, finalize the dataset."""
        self.stop_session()
        self.store.close()

    # ---- messages and time --------------------------------------------------------------------------
    def register_topic(self, topic: str, msg_type: str) -> None:
        """Record `topic` too (extra topics whose type the node learns from the graph)."""
        with self._lock:
            self.topic_types[topic] = msg_type
            if self.bag is not None:
                self._add_topic(topic, msg_type)

    def on_message(self, topic: str, data: bytes, log_time_ns: int) -> None:
        """A serialized message arrived (log time = receive time on the node's clock)."""
        self.seen.add(topic)
        with self._lock:
            if self.state != RECORDING or topic not in self.topic_types:
                return
            if self.sentry is not None:
                self.sentry.add(self._bag_name(topic), data, log_time_ns)
                return
            if self.bag is None:
                return
            try:
                self.bag.write(self._bag_name(topic), data, log_time_ns)
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
            if self.state == RESETTING and (bag := self.store.discard_held()) is not None:
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
            self.store.release_held()
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
        primary = self._bag_name(self.contract.primary.topic)
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
        self._notify()

    def _notify(self) -> None:
        for fn in self.listeners:
            fn()

    def _report(self, message: str) -> None:
        self.message = message

    def _bag_name(self, topic: str) -> str:
        return self.bag_names.get(topic, topic)

    def _add_topic(self, topic: str, msg_type: str) -> None:
        assert self.bag is not None
        self.bag.add_topic(self._bag_name(topic), msg_type, self.topic_reliability.get(topic, "reliable"))

    def _begin_episode(self) -> None:
        self.store.release_held()
        if self.sentry is not None:
            self.sentry.clear()
        else:
            self._open_bag()
        self._set_state(RECORDING)

    def _open_bag(self) -> None:
        self.bag = BagWriter(
            self.store.next_bag_path(),
            compression=self.config.compression,
            custom_data={"apprentice.task": self.task, "apprentice.contract": self.contract.source},
        )
        for topic, msg_type in self.topic_types.items():
            self._add_topic(topic, msg_type)
        self.frames = 0

    def _close_bag(self, keep: bool, hold: bool = False) -> Path:
        assert self.bag is not None
        path = self.bag.close()
        self.bag = None
        if keep:
            self.store.keep(path, self.task, self.frames, hold=hold)
            self.episodes_recorded += 1
        else:
            self.store.discard(path)
        return path

    def wait_converted(self, timeout_s: float = 60.0) -> bool:
        """Block until every queued bag is converted (tests, shutdown)."""
        return self.store.wait_converted(timeout_s)

    # ---- status -------------------------------------------------------------------------------------
    @property
    def episode_index(self) -> int:
        """Dataset index the current (or next) episode will get if every queued bag converts."""
        return self.store.episode_index

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
            return self.sentry.count(self._bag_name(self.contract.primary.topic))
        return self.frames
