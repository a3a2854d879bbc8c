"""Actor ⇄ learner transport for online RL (HIL-SERL): gRPC with raw-bytes frames, no generated code.

`LearnerService` runs in the learner process (no ROS); `ActorClient` runs beside the robot. The service
shape is lerobot's LearnerService (Ready, SendTransitions, StreamParameters, SendInteractions); what the
bytes hold, and why, is in `protocol`.
"""

from __future__ import annotations


class TransportError(RuntimeError):
    """An actor/learner transport problem: refused handshake, learner unreachable, a malformed frame."""


from apprentice.rl.transport.protocol import DEFAULT_PORT, PROTOCOL_VERSION  # noqa: E402

__all__ = ["DEFAULT_PORT", "PROTOCOL_VERSION", "TransportError"]
