"""The learner: transitions from actors into the replay buffer, updates at `utd_ratio`, weights back out.

Plain Python, no ROS: it runs where the GPU is. The loop, top to bottom: drain what the actors sent
(`LearnerService.inbox`) into whole episodes of the replay buffer; once the buffer holds
`online_step_before_learning` transitions, run one `algorithm.update(batch)` per transition received
on `utd_ratio` batches stacked along B (the `OnlineAlgorithm` contract: SAC splits them into
`utd_ratio` critic updates, the last one also updating actor and temperature); every
`policy_parameters_push_frequency` updates publish `actor_state_dict()` to the actors; every
`save_freq` updates checkpoint the algorithm, the replay buffer and the per-actor sequence numbers
(`checkpoint`), so a killed learner resumes where its last checkpoint was and the actors resend what
came after it.

An episode enters the replay buffer when its last transition arrives (the buffer stores whole
episodes: `ReplayBuffer`). The batch `update` gets (B = utd_ratio * batch_size), as torch tensors:
``observation.*`` and ``next.observation.*`` (B, …) as the env gives them (images uint8 (B, C, H, W)),
``action`` (B, A),
``next.reward``, ``next.done`` (terminated, not truncated: a time limit still bootstraps),
``next.truncated`` and ``complementary_info.is_intervention`` (B,).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apprentice.rl.algorithm import OnlineAlgorithm
from apprentice.rl.checkpoint import LearnerError, latest_checkpoint, load_checkpoint, save_checkpoint
from apprentice.rl.replay import ReplayBuffer
from apprentice.rl.transport.codec import Transition, encode_parameters
from apprentice.rl.transport.learner_service import LearnerService
from apprentice.rl.transport.protocol import DEFAULT_PORT

log = logging.getLogger(__name__)
INTERVENTION = "complementary_info.is_intervention"
IMAGE_PREFIX = "observation.images."


@dataclass
class LearnerConfig:
    output_dir: str = "outputs/learner"
    host: str = "127.0.0.1"  # another machine's actor needs 0.0.0.0 or this box's address (--host)
    port: int = DEFAULT_PORT  # lerobot's learner_port
    batch_size: int = 256
    utd_ratio: int = 1  # batches per update, one update per transition received; = the algorithm's utd_ratio
    online_step_before_learning: int = 100  # transitions in the buffer before the first update
    online_buffer_capacity: int = 100_000  # frames (lerobot's name)
    # Learner updates between weight pushes. lerobot's field of this name counts seconds; steps keep
    # the actor's policy age the same whatever the GPU's speed.
    policy_parameters_push_frequency: int = 100
    save_freq: int = 1000  # updates between checkpoints (0: only at the end)
    resume: bool = False
    token_file: str = ""  # access token (first line) every actor must send; required off loopback
    seed: int = 0
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # what actors must send (handshake)

    def __post_init__(self) -> None:
        for name in ("batch_size", "utd_ratio", "policy_parameters_push_frequency"):
            if getattr(self, name) < 1:
                raise LearnerError(f"learner config: {name} must be >= 1, got {getattr(self, name)}")
        if not self.features or "action" not in self.features:
            raise LearnerError("learner config: features must list the observation keys and action "
                                  "({key: {dtype, shape}}), the handshake checks actors against them")


class EpisodeAssembler:
    """Per-session open episodes; a finished one becomes `ReplayBuffer` frames (T + 1 observations)."""

    def __init__(self) -> None:
        self.open: dict[str, list[Transition]] = {}
        self.completed_seq: dict[str, int] = {}  # last seq of each session's last finished episode

    def add(self, session: str, t: Transition) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        steps = self.open.setdefault(session, [])
        steps.append(t)
        if not t.done:
            return None
        del self.open[session]
        self.completed_seq[session] = t.seq
        return episode_frames(steps)


def episode_frames(steps: list[Transition]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The replay-buffer frames of one episode and its has_action mask."""
    last = steps[-1].next_observation
    assert last is not None  # Transition checks it for a done transition
    frames = {k: np.stack([s.observation[k] for s in steps] + [last[k]]) for k in steps[0].observation}

    def per_step(values: list, dtype: Any) -> np.ndarray:
        return np.asarray([*values, 0], dtype=dtype)

    action = np.stack([np.asarray(s.action, np.float32) for s in steps])
    frames["action"] = np.concatenate([action, np.zeros_like(action[:1])])
    frames["next.reward"] = per_step([s.reward for s in steps], np.float32)
    frames["next.done"] = per_step([s.terminated for s in steps], bool)
    frames["next.truncated"] = per_step([s.truncated for s in steps], bool)
    frames["next.success"] = per_step([s.success for s in steps], bool)
    frames[INTERVENTION] = per_step([s.is_intervention for s in steps], bool)
    return frames, np.arange(len(steps) + 1) < len(steps)


class Learner:
    """`start()` binds the service (and resumes); `run(stop)` loops until ``stop`` is set."""

    def __init__(self, algorithm: OnlineAlgorithm, config: LearnerConfig) -> None:
        self.algorithm = algorithm
        self.config = config
        self.replay = ReplayBuffer(config.online_buffer_capacity)
        self.assembler = EpisodeAssembler()
        self.step = 0
        self.transitions = 0  # received, all sessions
        self.update_budget = 0.0
        self.rng = np.random.default_rng(config.seed)
        self.metrics: dict[str, float] = {}
        self.service: LearnerService | None = None
        self.observation_keys = [k for k in config.features if k != "action"]
        self._last_saved_at = (-1, -1)  # (step, transitions) of the last checkpoint
        self._ready = False

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> int:
        theirs = getattr(getattr(self.algorithm, "config", None), "utd_ratio", self.config.utd_ratio)
        if theirs != self.config.utd_ratio:
            raise LearnerError(f"learner.utd_ratio={self.config.utd_ratio} but the algorithm's utd_ratio is {theirs}: "
                               "the learner stacks that many batches per update; set them equal")
        sessions = self._resume() if self.config.resume else self._fresh()
        from apprentice.rl.transport.protocol import read_token

        token = read_token(self.config.token_file, "learner.token_file")
        self.service = LearnerService(self.config.features, self.config.host, self.config.port, sessions, token=token)
        self.service.step = self.step
        port = self.service.start()
        self._publish()
        return port

    def _fresh(self) -> dict[str, tuple[int, int]]:
        if latest_checkpoint(self.config.output_dir) is not None:
            raise LearnerError(f"{self.config.output_dir} already holds learner checkpoints: pass --resume=true "
                                  "to continue that run, or another --output_dir")
        return {}

    def _resume(self) -> dict[str, tuple[int, int]]:
        directory = latest_checkpoint(self.config.output_dir)
        if directory is None:
            raise LearnerError(f"--resume: no checkpoint in {Path(self.config.output_dir) / 'checkpoints'}; "
                                  "drop --resume to start a new run")
        state, self.replay, learner_state = load_checkpoint(directory)
        self.algorithm.load_state_dict(state)
        self.step = int(learner_state["step"])
        self.transitions = int(learner_state["transitions"])
        self._last_saved_at = (self.step, self.transitions)
        self.assembler.completed_seq = {s: int(v) for s, v in learner_state["sessions"].items()}
        self.rng = np.random.default_rng([self.config.seed, self.step])
        log.info("resumed from %s: step %d, %d frames in the replay buffer", directory, self.step, len(self.replay))
        return {s: (v, v) for s, v in self.assembler.completed_seq.items()}

    def stop(self, checkpoint: bool = True) -> None:
        """Stop serving; with ``checkpoint``, first take in what arrived and save if anything changed."""
        if checkpoint and self.service is not None:
            self.service.stop()  # no more arrivals: then nothing received is missing from the checkpoint
            while self.ingest(timeout=0.0):
                pass
            if (self.step, self.transitions) != self._last_saved_at:
                self.save()
        if self.service is not None:
            self.service.stop()

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, max_steps: int | None = None) -> None:
        while not stop.is_set() and (max_steps is None or self.step < max_steps):
            self.ingest(timeout=0.0 if self.update_budget >= 1 else 0.05)
            if self.update_budget >= 1 and self.ready_to_learn:
                self.update()

    @property
    def ready_to_learn(self) -> bool:
        # Once enough transitions are in, the buffer never shrinks below that again: count only until then.
        if not self._ready:
            self._ready = int(self.replay.has_action.sum()) >= max(1, self.config.online_step_before_learning)
        return self._ready

    def ingest(self, timeout: float = 0.0, limit: int = 10_000) -> int:
        """Move up to ``limit`` received transitions into the replay buffer; returns how many."""
        assert self.service is not None, "start() the learner first"
        count = 0
        while count < limit:
            try:
                session, transition = self.service.inbox.get(timeout=timeout if count == 0 else 0.0)
            except queue.Empty:
                break
            count += 1
            episode = self.assembler.add(session, transition)
            if episode is not None:
                self.replay.add_episode(*episode)
        self.transitions += count
        if self.ready_to_learn:
            self.update_budget += count
        self._log_interactions()
        return count

    def update(self) -> dict[str, float]:
        batch = self.sample()
        self.metrics = self.algorithm.update(batch)
        self.step += 1
        self.update_budget -= 1
        if self.step % self.config.policy_parameters_push_frequency == 0:
            self._publish()
        if self.config.save_freq and self.step % self.config.save_freq == 0:
            self.save()
        return self.metrics

    def sample(self) -> dict[str, torch.Tensor]:
        deltas = {k: [0, 1] for k in self.observation_keys}
        window = self.replay.sample(self.config.batch_size * self.config.utd_ratio, deltas, self.rng)
        batch: dict[str, torch.Tensor] = {}
        for key in self.observation_keys:
            pair = torch.from_numpy(np.ascontiguousarray(window[key]))
            if key.startswith(IMAGE_PREFIX) and pair.ndim == 5 and pair.shape[-1] in (1, 3):
                # Actors send (H, W, C) uint8 as cameras give them; the algorithms take (B, C, H, W).
                pair = pair.permute(0, 1, 4, 2, 3).contiguous()
            batch[key], batch[f"next.{key}"] = pair[:, 0], pair[:, 1]
        for key in ("action", "next.reward", "next.done", "next.truncated", INTERVENTION):
            batch[key] = torch.from_numpy(np.ascontiguousarray(window[key]))
        return batch

    def save(self) -> Path:
        assert self.service is not None
        sessions = dict(self.assembler.completed_seq)
        path = save_checkpoint(self.config.output_dir, self.step, self.algorithm.state_dict(), self.replay,
                               {"transitions": self.transitions - self._open_transitions(), "sessions": sessions})
        self.service.mark_durable(sessions)
        self._last_saved_at = (self.step, self.transitions)
        return path

    def _open_transitions(self) -> int:
        # Transitions of unfinished episodes are not in the checkpoint: the actors resend them.
        return sum(len(v) for v in self.assembler.open.values())

    def _publish(self) -> None:
        assert self.service is not None
        self.service.step = self.step
        self.service.publish_parameters(self.step, encode_parameters(self.step, self.algorithm.actor_state_dict()))

    def _log_interactions(self) -> None:
        assert self.service is not None
        path = Path(self.config.output_dir) / "interactions.jsonl"
        lines = []
        while True:
            try:
                lines.append(self.service.interactions.get_nowait())
            except queue.Empty:
                break
        if lines:
            import json

            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                for message in lines:
                    f.write(json.dumps({**message, "learner_step": self.step, "time": time.time()}) + "\n")


def config_from_dict(data: Mapping[str, Any], where: str) -> LearnerConfig:
    known = set(LearnerConfig.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise LearnerError(f"{where}: unknown learner option(s) {unknown}; known: {sorted(known)}")
    return LearnerConfig(**data)
