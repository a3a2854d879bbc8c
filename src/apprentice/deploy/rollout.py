"""Rollout: who commands each control tick — the policy, a person (takeover), or nobody (hold).

The policy node feeds this class the recorder's episode state (`follow_recorder`), the operator's
service calls, leader-arm poses and conflicts on the command topic, and asks it each tick for the
command and the intervention flag. Rules it keeps:

- a new recording episode resets the policy but does **not** re-arm a tripped watchdog; only the
  operator does (`on_enable(True)`), and between episodes that only re-arms, it does not drive;
- during a takeover the policy is not stepped and the leader's targets go out through the safety
  filter; handing back drops the policy's plan (it was made before the person moved the arm);
- while another node publishes on the command topic (a teleop node still forwarding the leader),
  nothing is commanded: two writers would fight over the arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apprentice.deploy.runtime import PolicyRuntime, TickOutcome
from apprentice.deploy.takeover import Takeover


@dataclass
class RolloutTick:
    outcome: TickOutcome
    intervention: bool  # a person drove (or held) this tick: complementary_info.is_intervention


class Rollout:
    def __init__(self, runtime: PolicyRuntime, takeover: Takeover, follow_recorder: bool = False) -> None:
        self.runtime = runtime
        self.takeover = takeover
        self.follow_recorder = follow_recorder
        self.recording = False  # the recorder's state, when following it
        self.operator_hold = False  # ~/enable false: stay off across episodes until ~/enable true
        self.conflict = ""  # why the command topic is not ours alone ('' = it is)

    # -- events ----------------------------------------------------------------------------------------
    def on_recorder(self, recording: bool, episode_index: int) -> str | None:
        """The recorder's status changed; returns a line for the log when something changed."""
        if recording == self.recording:
            return None
        self.recording = recording
        self.takeover.end()  # a takeover belongs to its episode
        if not recording:
            self.runtime.enable(False)
            return "recorder not recording: policy holding"
        if self.operator_hold:
            return f"recorder episode {episode_index}: policy disabled by the operator (~/enable true to drive)"
        self.runtime.start_episode()
        if self.runtime.fault:
            return (
                f"recorder episode {episode_index}: policy holding, watchdog still tripped "
                f"({self.runtime.fault}); call ~/enable true to re-arm"
            )
        return f"recorder episode {episode_index}: policy driving"

    def on_enable(self, on: bool) -> str:
        """The operator's `~/enable` call: the only way a tripped watchdog is re-armed."""
        self.operator_hold = not on
        if not on:
            self.runtime.enable(False)
            return "disabled"
        if self.follow_recorder and not self.recording:
            self.runtime.rearm()
            return "re-armed; drives when the recorder's next episode starts"
        self.runtime.enable(True)
        return "enabled"

    @property
    def driving_allowed(self) -> bool:
        """Whether anyone may command now: when following the recorder, only while it records."""
        return self.recording or not self.follow_recorder

    def on_takeover(self, on: bool) -> tuple[bool, str]:
        if on and not self.driving_allowed:
            return False, "the recorder is not recording: nobody drives between episodes"
        was = self.takeover.active
        ok, message = self.takeover.request(on)
        if was and not self.takeover.active:
            self._hand_back()
        return ok, message

    def on_leader(self, stamp_ns: int, positions: np.ndarray) -> str | None:
        return self.takeover.leader(stamp_ns, positions, detect=self.driving_allowed)

    def _hand_back(self) -> None:
        if self.runtime.enabled:
            # Fresh plan and timers; a trip from before the takeover stays latched.
            self.runtime.start_episode()

    # -- control tick ----------------------------------------------------------------------------------
    def step(self, tick_ns: int) -> RolloutTick:
        if self.conflict:
            return RolloutTick(TickOutcome(None, f"conflict: {self.conflict}"), self.takeover.active)
        if self.takeover.active:
            target = self.takeover.target(tick_ns)
            if target is None:
                return RolloutTick(TickOutcome(None, "takeover: no fresh leader arm pose"), True)
            outcome = self.runtime.relay(tick_ns, target)
            if outcome.command is not None:
                outcome.reason = "takeover"
            return RolloutTick(outcome, True)
        return RolloutTick(self.runtime.step(tick_ns), False)
