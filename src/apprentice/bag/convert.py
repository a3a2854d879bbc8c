"""Bag -> one dataset episode: sample every contract feature onto the fps grid, then write the frames.

Pass 1 reads every feature topic: numeric messages are decoded, camera messages only give their header
stamp (read straight from the CDR bytes) and their position in the topic. The LatestSampler then picks,
for each tick, the latest message at or before it within `max_age_s`; ticks with a stale or missing
required feature are dropped and counted. Pass 2 decodes just the camera frames that ticks use, in file
order, and hands frames to the DatasetWriter as soon as they are complete, so memory stays at a few
frames even for long 640x480 episodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.bag.errors import BagError
from apprentice.bag.reader import BagReader, header_stamp_ns, image_view
from apprentice.bag.sampler import LatestSampler
from apprentice.bag.writer import ros_topic
from apprentice.contract import IMAGE, Contract, ContractError, FeatureSpec

CLOCK_JUMP_NS = 1_000_000_000  # a stamp this far behind its topic's newest one is a clock reset, not jitter
_NO_HEADER = {
    "std_msgs/msg/Bool",
    "std_msgs/msg/Float64MultiArray",
    "std_msgs/msg/Float32MultiArray",
    "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/Pose",
    "geometry_msgs/msg/Point",
}


@dataclass
class EpisodeReport:
    """What converting one bag did: kept/dropped ticks and why, duplicates, truncation."""

    bag: str
    episode_index: int = -1
    frames: int = 0
    ticks: int = 0
    dropped: int = 0
    dropped_by_key: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    truncated: bool = False
    duration_s: float = 0.0

    @property
    def drop_ratio(self) -> float:
        return self.dropped / self.ticks if self.ticks else 0.0

    def summary(self) -> str:
        why = ", ".join(f"{k} {n}" for k, n in sorted(self.dropped_by_key.items())) or "none"
        ep = f"episode {self.episode_index}" if self.episode_index >= 0 else "not saved"
        extra = " (truncated bag: read up to its last complete chunk)" if self.truncated else ""
        return (
            f"{self.bag}: {ep}, {self.frames} frames from {self.ticks} ticks ({self.duration_s:.1f} s); "
            f"dropped {self.dropped} (stale/missing: {why}){extra}"
        )


@dataclass
class _Plan:
    report: EpisodeReport
    rows: list[dict[str, Any]]  # per kept tick: numeric arrays, or an int message ordinal for cameras
    images: dict[str, list[FeatureSpec]]  # bag topic -> camera features read from it


def bag_namespace(contract: Contract, bag_topics: list[str]) -> str:
    """'' when the contract's relative topics are in the bag as /<topic>; else the one namespace that
    holds them all (a bag of a namespaced robot: /robot1/joint_states ...)."""
    relative = [ros_topic(s.topic) for s in contract.specs if s.required and not s.topic.startswith("/")]
    if not relative or all(t in bag_topics for t in relative):
        return ""
    candidates = {b[: -len(t)] for t in relative for b in bag_topics if b.endswith(t) and b != t}
    fits = sorted(ns for ns in candidates if all(ns + t in bag_topics for t in relative))
    if len(fits) > 1:
        raise BagError(
            f"the contract's topics are in the bag under several namespaces {fits}; "
            "write the full topic names in the contract"
        )
    return fits[0] if fits else ""


def _resolve_topics(reader: BagReader, contract: Contract) -> dict[str, list[FeatureSpec]]:
    by_topic: dict[str, list[FeatureSpec]] = defaultdict(list)
    namespace = bag_namespace(contract, list(reader.topics))
    for spec in contract.specs:
        topic = ros_topic(spec.topic) if spec.topic.startswith("/") else namespace + ros_topic(spec.topic)
        if topic not in reader.topics:
            if spec.required:
                raise BagError(
                    f"bag {reader.path} has no topic '{topic}' (feature {spec.key}); its topics: "
                    f"{sorted(reader.topics)}. Fix 'topic' in {contract.source} or record it"
                )
            continue
        if reader.topics[topic] != spec.msg_type:
            raise BagError(
                f"bag {reader.path}: topic '{topic}' is {reader.topics[topic]}, but {contract.source} "
                f"says {spec.msg_type} for {spec.key}"
            )
        by_topic[topic].append(spec)
    return by_topic


def _plan(reader: BagReader, contract: Contract, time_source: str) -> _Plan:
    by_topic = _resolve_topics(reader, contract)
    # key -> lists of header stamp (0 = none), log time, value (numeric array or camera message ordinal)
    stamps: dict[str, list[int]] = defaultdict(list)
    logs: dict[str, list[int]] = defaultdict(list)
    values: dict[str, list[Any]] = defaultdict(list)
    ordinals: dict[str, int] = defaultdict(int)
    for m in reader.messages(by_topic):
        specs = by_topic[m.topic]
        numeric = [s for s in specs if not s.is_image]
        msg = reader.deserializer(m.topic)(m.data) if numeric else None
        stamp = 0 if specs[0].msg_type in _NO_HEADER or time_source == "log" else header_stamp_ns(m.data)
        for spec in specs:
            try:
                value = ordinals[m.topic] if spec.is_image else spec.decode(msg)
            except ContractError as exc:
                raise BagError(f"bag {reader.path}: {exc}") from exc
            stamps[spec.key].append(stamp)
            logs[spec.key].append(m.log_time_ns)
            values[spec.key].append(value)
        ordinals[m.topic] += 1
    for spec in contract.specs:
        if spec.required and not values.get(spec.key):
            raise BagError(
                f"bag {reader.path}: topic '{ros_topic(spec.topic)}' ({spec.key}) has no messages"
                + (" (the bag was cut short)" if reader.truncated else "")
            )

    # Header-less messages (and zero stamps) go onto the header clock by the median log-minus-header
    # offset of the stamped ones: this keeps use_sim_time bags (sim-time stamps, wall-clock log times)
    # and bags from machines with offset clocks aligned.
    diffs = [lg - st for k in stamps for st, lg in zip(stamps[k], logs[k]) if st]
    offset = int(np.median(diffs)) if diffs else 0
    times: dict[str, np.ndarray] = {}
    for key in values:
        st, lg = np.asarray(stamps[key], np.int64), np.asarray(logs[key], np.int64)
        t = np.where(st != 0, st, lg - offset)
        jump = np.maximum.accumulate(t) - t
        if jump.max(initial=0) > CLOCK_JUMP_NS:
            i = int(np.argmax(jump > CLOCK_JUMP_NS))
            raise BagError(
                f"bag {reader.path}: the clock of {contract.spec(key).topic} jumps back by "
                f"{jump[i] / 1e9:.1f} s at message {i} (a sim-time reset?); split the bag there or convert "
                "with --time-source log"
            )
        times[key] = t
    plan = _sample(reader, contract, times, values)
    plan.images = {
        t: [s for s in specs if s.is_image] for t, specs in by_topic.items() if any(s.is_image for s in specs)
    }
    return plan


def _sample(reader: BagReader, contract: Contract, times: dict[str, np.ndarray], values: dict[str, list[Any]]) -> _Plan:
    specs = [s for s in contract.specs if s.key in values]
    required = [s.key for s in specs if s.required]
    start = max(int(times[k].min()) for k in required)
    end = min(int(times[k].max()) for k in required)
    n_ticks = (end - start) * contract.fps // 1_000_000_000 + 1 if end >= start else 0
    report = EpisodeReport(bag=str(reader.path), ticks=int(n_ticks), truncated=reader.truncated)
    sampler = LatestSampler(specs, max_history=1 << 30)
    for key, t in times.items():
        for i in np.argsort(t, kind="stable"):
            sampler.push(key, int(t[i]), values[key][i])
    rows: list[dict[str, Any]] = []
    defaults = {s.key: np.zeros(s.shape, s.dtype) for s in contract.specs if not s.required}
    for i in range(report.ticks):
        tick = start + i * 1_000_000_000 // contract.fps
        stale = sampler.stale_keys(tick)
        if stale:
            report.dropped += 1
            for k in stale:
                report.dropped_by_key[k] = report.dropped_by_key.get(k, 0) + 1
            continue
        rows.append({**defaults, **(sampler.sample(tick) or {})})
    report.duplicates = dict(sampler.duplicates)
    report.frames = len(rows)
    report.duration_s = report.ticks / contract.fps
    return _Plan(report, rows, {})


def _frames(reader: BagReader, plan: _Plan) -> Iterator[dict[str, Any]]:
    """Yield complete frames in order, decoding each needed camera message once (pass 2)."""
    rows = plan.rows
    if not plan.images:
        yield from rows
        return
    topics = plan.images
    images = [s for specs in topics.values() for s in specs]
    last_use: dict[str, dict[int, int]] = {s.key: {} for s in images}
    for i, row in enumerate(rows):
        for s in images:
            last_use[s.key][row[s.key]] = i
    cache: dict[str, dict[int, np.ndarray]] = {s.key: {} for s in images}
    ordinals: dict[str, int] = defaultdict(int)
    next_row = 0
    for m in reader.messages(topics):
        ordinal = ordinals[m.topic]
        ordinals[m.topic] += 1
        wanted = [s for s in topics[m.topic] if ordinal in last_use[s.key]]
        if not wanted:
            continue
        msg = image_view(m.data) if wanted[0].msg_type == IMAGE else None
        msg = msg or reader.deserializer(m.topic)(m.data)
        for s in wanted:
            try:
                cache[s.key][ordinal] = s.decode(msg)
            except ContractError as exc:
                raise BagError(f"bag {reader.path}: {exc}") from exc
        while next_row < len(rows) and all(rows[next_row][s.key] in cache[s.key] for s in images):
            row = rows[next_row]
            frame = dict(row)
            for s in images:
                frame[s.key] = cache[s.key][row[s.key]]
                if last_use[s.key][row[s.key]] == next_row:
                    del cache[s.key][row[s.key]]
            yield frame
            next_row += 1
    if next_row < len(rows):
        raise BagError(
            f"bag {reader.path}: camera messages changed between reads ({next_row}/{len(rows)} "
            "frames); is another process writing this bag?"
        )


def iter_episode(
    bag: str | Path, contract: Contract, time_source: str = "header"
) -> tuple[EpisodeReport, Iterator[dict[str, Any]]]:
    """Plan a bag's episode; returns its report and an iterator over its aligned frames (dataset units)."""
    if time_source not in ("header", "log"):
        raise BagError(f"time_source must be 'header' or 'log', got '{time_source}'")
    reader = BagReader(bag)
    plan = _plan(reader, contract, time_source)
    report = plan.report
    if report.frames == 0:
        raise BagError(
            f"{report.summary()}: no tick had every required feature; check the topics' rates "
            "and max_age_s in the contract"
        )
    if report.drop_ratio > contract.max_drop_ratio:
        raise BagError(
            f"episode rejected: {report.summary()} — {report.drop_ratio:.0%} of ticks dropped, "
            f"more than max_drop_ratio {contract.max_drop_ratio:.0%} in {contract.source}"
        )
    return report, _frames(reader, plan)


def convert_bag(
    bag: str | Path, contract: Contract, writer: Any, task: str | None = None, time_source: str = "header"
) -> EpisodeReport:
    """Convert one bag into a new episode of `writer` (a DatasetWriter); nothing half-written on error."""
    task = task or contract.task
    if not task:
        raise BagError(f"no task for {bag}: set 'task' in {contract.source} or pass one")
    report, frames = iter_episode(bag, contract, time_source)
    try:
        for frame in frames:
            writer.add_frame(frame)
        report.episode_index = writer.save_episode(task=task)
    except BaseException:
        writer.clear_episode_buffer()
        raise
    return report
