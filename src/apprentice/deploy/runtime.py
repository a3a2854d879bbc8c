"""`PolicyRuntime`: contract topics in, safe joint commands out, one call per control tick.

The node pushes every decoded message into `push()` and calls `step()` from its fps timer. A step
samples the latest value of each observation feature at the tick (LatestSampler: never a message
from after the tick, never one older than the feature's max_age), builds the policy's batched raw
observation, gets the tick's action from the chunk scheduler, converts it to command units through
the contract, and applies the safety filter. Any reason not to command — disabled, stale inputs,
no action ready, watchdog — returns ``command=None`` with the reason: the caller publishes nothing,
so a position-controlled arm holds its last command.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice.contract import is_image_key
from apprentice.deploy import DeployError
from apprentice.deploy.chunking import ActionScheduler, ChunkPrefix
from apprentice.deploy.safety import SafetyFilter, SafetyLimits, SafetyReport
from apprentice.deploy.stats import LatencyStats, LoopTimer
from apprentice.deploy.watchdog import Trip, Watchdog

MODES = ("sync", "async", "ensemble", "policy")
# Set on every observation dict: the stamp (ROS ns) and control tick it was sampled at. Local policies
# ignore them; a remote policy sends them, and every chunk it gets back names the observation it answers.
OBS_STAMP = "obs_stamp_ns"
OBS_TICK = "obs_tick"


@dataclass
class RuntimeConfig:
    """How the policy is driven. ``None`` fields take the policy's/contract's own values."""

    mode: str = "sync"  # sync | async | ensemble | policy (the policy's own select_action queue)
    fps: float | None = None  # control rate; default: the contract's (= the dataset's) fps
    task: str | None = None  # language instruction; default: the contract's task
    n_action_steps: int | None = None
    temporal_ensemble_coeff: float | None = None  # mode=ensemble; default: the policy's, else 0.01
    lookahead: int | None = None  # mode=async: ticks left in the queue when inference starts
    # Real-time chunking (mode=async, policies whose predict_action_chunk takes `rtc`: flow matching).
    # Field names are lerobot's RTCConfig's with an rtc_ prefix; see apprentice.policies.rtc.
    rtc_enabled: bool = False
    rtc_execution_horizon: int = 10  # actions of the previous chunk that guide the next
    rtc_max_guidance_weight: float = 10.0
    rtc_prefix_attention_schedule: str = "LINEAR"  # ZEROS | ONES | LINEAR | EXP
    rtc_inference_delay: int | None = None  # ticks; None = measured (largest of the last 10 chunks)
    input_timeout_s: float = 0.5  # watchdog: no fresh observation for this long -> stop and latch
    action_timeout_s: float = 1.0  # watchdog: no action produced for this long -> stop and latch

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DeployError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.fps is not None and self.fps <= 0:
            raise DeployError(f"fps must be > 0, got {self.fps}")
        if self.rtc_enabled and self.mode != "async":
            raise DeployError(
                f"rtc_enabled needs mode=async (got mode={self.mode}): RTC guides the chunk computed while the "
                "previous one executes"
            )
        if self.rtc_execution_horizon < 1:
            raise DeployError(f"rtc_execution_horizon must be >= 1, got {self.rtc_execution_horizon}")


@dataclass
class TickOutcome:
    command: np.ndarray | None  # command units (radians), contract action joint order; None = hold
    reason: str  # "ok", or why nothing is commanded
    obs_stamp_ns: int | None = None  # the oldest input of the observation (ROS time)
    safety: SafetyReport = field(default_factory=SafetyReport)


def _policy_attr(policy: Any, name: str, default: Any = None) -> Any:
    return getattr(getattr(policy, "config", None), name, default)


class PolicyRuntime:
    """Everything the policy node does per tick, without ROS. ``clock`` is monotonic nanoseconds."""

    def __init__(
        self,
        policy: Any,
        contract: Any,
        config: RuntimeConfig | None = None,
        safety: SafetyLimits | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        from apprentice.bag import LatestSampler  # the recorder's alignment rule, shared on purpose

        self.policy = policy
        self.contract = contract
        self.config = config or RuntimeConfig()
        self.fps = float(self.config.fps or contract.fps)
        self.task = self.config.task if self.config.task is not None else contract.task
        self.rtc = self._rtc_config()
        self._clock = clock
        self.action_names = list(contract.action.names)
        self.observation_specs = list(contract.observations)
        self._check_features()
        # Only the latest values matter online: a short history bounds memory while the node waits
        # disabled or holding (1024 camera frames of 640x480 would be ~900 MB per camera).
        self.sampler = LatestSampler(self.observation_specs, max_history=64)
        self._state_index = self._state_to_action_index()
        self.safety = SafetyFilter(safety or SafetyLimits(names=self.action_names))
        self.scheduler = self._make_scheduler()
        self.watchdog = Watchdog({"inputs": self.config.input_timeout_s, "actions": self.config.action_timeout_s})
        self.loop = LoopTimer(self.fps)
        self.obs_to_command = LatencyStats()
        self.step_compute = LatencyStats()
        self.holds: dict[str, int] = {}
        self.enabled = False
        self._handled_trip: Trip | None = None
        self._tick_origin_ns: int | None = None  # tick index 0 (anchored at the first tick after enable)
        self._last_index = -1

    # -- setup checks -------------------------------------------------------------------------------
    def _check_features(self) -> None:
        wanted = set(_policy_attr(self.policy, "input_features", {}) or {})
        have = {s.key for s in self.observation_specs}
        missing = sorted(wanted - have)
        if missing:
            raise DeployError(
                f"the policy needs {', '.join(missing)} but the contract only maps "
                f"{', '.join(sorted(have))}; "
                "deploy with the contract the policy's dataset was recorded with"
            )
        from apprentice.policies.image_resize import resize_problem

        inputs = _policy_attr(self.policy, "input_features", {}) or {}
        for spec in self.observation_specs:
            feature = inputs.get(spec.key)
            if spec.is_image and getattr(feature, "type", None) == "VISUAL" and len(spec.shape) == 3:
                h, w, c = spec.shape
                if (problem := resize_problem(spec.key, (c, h, w), tuple(feature.shape))) is not None:
                    raise DeployError(f"{problem}; deploy with the camera the policy's dataset was recorded with")
        action = (_policy_attr(self.policy, "output_features", {}) or {}).get("action")
        shape = getattr(action, "shape", None)
        if shape and int(shape[-1]) != len(self.action_names):
            raise DeployError(
                f"the policy outputs {shape[-1]} action values but the contract's action has "
                f"{len(self.action_names)} joints ({', '.join(self.action_names)})"
            )

    def _state_to_action_index(self) -> list[int] | None:
        """Where each action joint sits in observation.state, for the relative clamp (None: not all)."""
        state = next((s for s in self.observation_specs if s.key == "observation.state"), None)
        if state is None or not state.names:
            return None
        names = list(state.names)
        if not all(n in names for n in self.action_names):
            return None
        return [names.index(n) for n in self.action_names]

    def _rtc_config(self) -> Any:
        """The policies' RTCConfig when RTC is on and the policy can use it (feature-detected), else None."""
        cfg = self.config
        if not cfg.rtc_enabled:
            return None
        from apprentice.policies import PolicyError
        from apprentice.policies.rtc import RTCConfig, accepts_rtc

        if not accepts_rtc(self.policy):
            raise DeployError(
                f"rtc_enabled: the {_policy_attr(self.policy, 'type', type(self.policy).__name__)} policy's "
                "predict_action_chunk takes no `rtc` (RTC needs a flow-matching policy such as smolvla); "
                "set rtc_enabled:=false"
            )
        try:
            return RTCConfig(
                enabled=True,
                prefix_attention_schedule=cfg.rtc_prefix_attention_schedule,
                max_guidance_weight=cfg.rtc_max_guidance_weight,
                execution_horizon=cfg.rtc_execution_horizon,
            )
        except PolicyError as exc:
            raise DeployError(str(exc)) from exc

    def set_task(self, task: str) -> bool:
        """A new language instruction for the next inference ('' = back to the configured default); True if
        it changed. The chunk being executed is kept: the instruction changes between chunks."""
        task = task or (self.config.task if self.config.task is not None else self.contract.task)
        changed = task != self.task
        self.task = task
        return changed

    def _make_scheduler(self) -> ActionScheduler | None:
        cfg = self.config
        if cfg.mode == "policy":
            return None
        n_steps = cfg.n_action_steps or int(_policy_attr(self.policy, "n_action_steps", 1) or 1)
        coeff = None
        if cfg.mode == "ensemble":
            coeff = cfg.temporal_ensemble_coeff
            if coeff is None:
                coeff = _policy_attr(self.policy, "temporal_ensemble_coeff", None)
            coeff = 0.01 if coeff is None else float(coeff)
        return ActionScheduler(
            self._predict_chunk,
            n_steps,
            asynchronous=cfg.mode == "async",
            temporal_ensemble_coeff=coeff,
            lookahead=cfg.lookahead,
            fps=self.fps,
            rtc=self.rtc is not None,
            inference_delay=cfg.rtc_inference_delay,
        )

    # -- inputs -------------------------------------------------------------------------------------
    def push(self, key: str, stamp_ns: int, value: np.ndarray) -> None:
        """A decoded message for feature ``key`` (from the contract's topic) stamped ``stamp_ns``."""
        self.sampler.push(key, stamp_ns, value)

    def build_observation(self, sample: dict[str, np.ndarray]) -> dict[str, Any]:
        """The policy's raw batched observation: state (1, D) float32, images (1, 3, H, W) in [0, 1]."""
        import torch

        from apprentice.policies.image_resize import fit_image

        device = getattr(self.policy, "device", None) or _policy_attr(self.policy, "device") or "cpu"
        obs: dict[str, Any] = {}
        for key, value in sample.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            if is_image_key(key):
                # HWC uint8 -> CHW [0, 1], resized on the CPU to the size the checkpoint was trained at
                # (its input_features; --policy.input_shapes), exactly as the training cache resized.
                tensor = fit_image(tensor, getattr(self.policy, "config", None), key)
            else:
                tensor = tensor.float()
            obs[key] = tensor.unsqueeze(0).to(device)
        obs["task"] = [self.task]
        return obs

    def warmup(self) -> float:
        """One inference on a blank observation before the first episode; returns its seconds.

        A model's first call is its slowest (allocations, kernel selection, CUDA context: seconds on a
        busy machine) and the action watchdog latches on a slow inference — so it is paid here, not by
        the first episode's watchdog."""
        blank = {
            s.key: np.zeros(s.shape, np.uint8 if s.is_image else np.float32) for s in self.observation_specs
        }
        started = time.perf_counter()
        observation = self.build_observation(blank)
        if self.scheduler is None:
            import torch

            with torch.inference_mode():
                self.policy.select_action(observation)
        else:
            self._predict_chunk(observation)
        self.reset()
        return time.perf_counter() - started

    def _predict_chunk(self, observation: dict[str, Any], prefix: ChunkPrefix | None = None) -> np.ndarray:
        import torch

        if prefix is None:
            with torch.inference_mode():
                chunk = self.policy.predict_action_chunk(observation)
        else:
            from apprentice.policies.rtc import RTCGuidance

            # The planned actions are in dataset units; guidance works where the model denoises: the
            # policy's normalized action space (lerobot's "original" actions, before unnormalizing).
            left = torch.as_tensor(prefix.actions, dtype=torch.float32).unsqueeze(0)
            device = getattr(self.policy, "device", None) or "cpu"
            left = left.to(device)
            if callable(normalize := getattr(getattr(self.policy, "normalizer", None), "normalize", None)):
                left = normalize("action", left)
            # no_grad, not inference_mode: RTC's full_jacobian takes a vector-Jacobian product through the model.
            guidance = RTCGuidance(left, prefix.inference_delay, self.rtc)
            with torch.no_grad():
                chunk = self.policy.predict_action_chunk(observation, rtc=guidance)
        return chunk[0].float().cpu().numpy()

    # -- control --------------------------------------------------------------------------------------
    def enable(self, on: bool) -> None:
        """Start (fresh policy state, watchdog re-armed: also clears a trip) or stop commanding."""
        if on:
            self.watchdog.rearm(self._clock())
            self._restart()
        self.enabled = on

    def start_episode(self) -> None:
        """Start commanding with a fresh policy state, like enable(True), but a latched watchdog trip stays:
        a new episode must not re-arm a fault a person has not looked at (only enable(True) clears it)."""
        self.watchdog.resume(self._clock())
        self._restart()
        self.enabled = True

    def rearm(self) -> None:
        """Clear a latched trip without starting to command (the operator re-arms between episodes)."""
        self.watchdog.rearm(self._clock())

    @property
    def fault(self) -> str:
        """The latched watchdog trip, '' when armed."""
        return str(self.watchdog.tripped) if self.watchdog.tripped is not None else ""

    def _restart(self) -> None:
        self.reset()
        self.loop.restart()
        self._tick_origin_ns, self._last_index = None, -1

    def reset(self) -> None:
        """New episode: drop queued actions and the policy's internal state."""
        if self.scheduler is not None:
            self.scheduler.reset()
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset()

    def step(self, tick_ns: int) -> TickOutcome:
        """The command for the control tick at ROS time ``tick_ns`` (None + reason = hold)."""
        started = self._clock()
        self.loop.tick(started)
        try:
            outcome = self._step(tick_ns)
        except Exception as exc:  # a failing model or a bad action stops the arm; the node keeps running
            trip = self._tripped(self.watchdog.fault(f"{type(exc).__name__}: {exc}"))
            outcome = TickOutcome(None, f"watchdog: {trip}; call the enable service to resume")
        if outcome.command is None:
            key = outcome.reason.split(":")[0]
            self.holds[key] = self.holds.get(key, 0) + 1
        self.step_compute.add((self._clock() - started) * 1e-9)
        return outcome

    def _step(self, tick_ns: int) -> TickOutcome:
        if not self.enabled:
            return TickOutcome(None, "disabled")
        if (trip := self._tripped(self.watchdog.check(self._clock()))) is not None:
            return TickOutcome(None, f"watchdog: {trip}; call the enable service to resume")
        sample = self.sampler.sample(tick_ns)
        if sample is None:
            # Never act on old data: hold. The plan is kept: it is indexed by tick, so the actions of
            # the ticks held here are dropped, and a chunk is never older than n_action_steps ticks
            # anyway; a long stall trips the watchdog, which does drop it.
            stale = self.sampler.stale_keys(tick_ns)
            if self.scheduler is None:
                self.reset()  # mode=policy: the policy's own queue must not replay the held ticks' actions
            return TickOutcome(None, f"stale: {', '.join(stale) or 'no observation yet'}")
        obs_stamp = min(self.sampler.sampled_stamps.values())  # the oldest input this action depends on
        measured = self._measured(sample)
        if measured is not None and not np.all(np.isfinite(measured)):
            # e.g. a ros2_control state interface not yet written: nothing to infer from or clamp to
            return TickOutcome(None, "stale: observation.state is not finite", obs_stamp)
        self.watchdog.feed("inputs", self._clock())
        observation = self.build_observation(sample)
        observation[OBS_STAMP] = obs_stamp
        if self.scheduler is None:
            import torch

            with torch.inference_mode():
                action = self.policy.select_action(observation)[0].float().cpu().numpy()
        else:
            observation[OBS_TICK] = tick = self._tick_index(tick_ns)
            action = self.scheduler.step(tick, observation)
        if action is None:
            return TickOutcome(None, "waiting: no action ready (inference in progress)", obs_stamp)
        if (trip := self._tripped(self.watchdog.check(self._clock(), sources=("actions",)))) is not None:
            # The inference itself took longer than the timeout: its action is from stale inputs.
            return TickOutcome(None, f"watchdog: {trip}; call the enable service to resume", obs_stamp)
        self.watchdog.feed("actions", self._clock())
        command = np.asarray(self.contract.action.encode_values(np.asarray(action, np.float32))["positions"])
        command, report = self.safety.apply(command.astype(np.float64), measured)
        return TickOutcome(command, "ok", obs_stamp, report)

    def relay(self, tick_ns: int, target: np.ndarray) -> TickOutcome:
        """A person's command (human takeover: the leader arm's joint targets, command units, action order)
        through the same safety filter as the policy's: limits, and the relative clamp against the
        measured position, so a leader far from the follower moves it at bounded speed."""
        sample = self.sampler.sample(tick_ns)
        if sample is None:
            stale = self.sampler.stale_keys(tick_ns)
            return TickOutcome(None, f"stale: {', '.join(stale) or 'no observation yet'}")
        measured = self._measured(sample)
        if measured is not None and not np.all(np.isfinite(measured)):
            return TickOutcome(None, "stale: observation.state is not finite")
        command, report = self.safety.apply(np.asarray(target, np.float64), measured)
        return TickOutcome(command, "ok", min(self.sampler.sampled_stamps.values()), report)

    def _tick_index(self, tick_ns: int) -> int:
        """Control tick number since enable: planned actions are keyed by it. Counted from the first tick,
        not from the clock's epoch, so a timer whose phase sits near half a period cannot map two
        consecutive callbacks to one index (or skip one) through scheduling jitter; a callback late by
        a whole period still advances by two (that tick's action has expired)."""
        if self._tick_origin_ns is None:
            self._tick_origin_ns = tick_ns
        index = max(self._last_index + 1, round((tick_ns - self._tick_origin_ns) * self.fps * 1e-9))
        self._last_index = index
        return index

    def _tripped(self, trip: Trip | None) -> Trip | None:
        """On a new trip, drop every planned action and the policy's state (once per trip)."""
        if trip is not None and trip is not self._handled_trip:
            self._handled_trip = trip
            self.reset()
        return trip

    def _measured(self, sample: dict[str, np.ndarray]) -> np.ndarray | None:
        """Present joint positions in command units and action order (for the relative clamp)."""
        if self._state_index is None or "observation.state" not in sample:
            return None
        spec = next(s for s in self.observation_specs if s.key == "observation.state")
        state = np.asarray(spec.encode_values(sample["observation.state"])["positions"], np.float64)
        return state[self._state_index]

    def record_publish(self, outcome: TickOutcome, publish_ns: int) -> None:
        """Latency from the observation's oldest input stamp to the command's publish (ROS time)."""
        if outcome.obs_stamp_ns is not None and outcome.command is not None:
            self.obs_to_command.add(max(0, publish_ns - outcome.obs_stamp_ns) * 1e-9)

    def diagnostics(self) -> dict[str, float | str]:
        """Flat key/values for diagnostic_msgs (latency, jitter, inference, holds, clamps)."""
        out: dict[str, float | str] = {"enabled": str(self.enabled), "mode": self.config.mode, "task": self.task}
        out.update({f"obs_to_command_{k}": v for k, v in self.obs_to_command.summary().items()})
        out.update({f"step_{k}": v for k, v in self.step_compute.summary().items() if k != "n"})
        out.update(self.loop.summary())
        if self.scheduler is not None:
            st = self.scheduler.stats
            inf = LatencyStats()
            for s in st.inference_s[-200:]:
                inf.add(s)
            out.update({f"inference_{k}": v for k, v in inf.summary().items() if k != "n"})
            if st.delay_ticks:
                out["inference_delay_ticks_max"] = float(max(st.delay_ticks[-200:]))
            if self.rtc is not None:
                out["rtc_inference_delay"] = float(self.scheduler.inference_delay)
            out.update(
                inferences=float(st.inferences),
                starved_ticks=float(st.starved_ticks),
                discarded_actions=float(st.discarded_actions),
            )
        out.update({f"hold_{k}": float(v) for k, v in self.holds.items()})
        out.update({f"clamped_{k}": float(v) for k, v in self.safety.clamp_counts.items() if v})
        out["watchdog_trips"] = float(self.watchdog.trips)
        if callable(remote := getattr(self.policy, "diagnostics", None)):  # a RemotePolicy's link figures
            out.update(remote())
        return out

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if callable(close := getattr(self.policy, "close", None)):  # a RemotePolicy's channel
            close()
