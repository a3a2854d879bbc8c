"""Transitions and weights as bytes: `wire` frames for transitions, safetensors for weights.

A `Transition` is one environment step as the actor saw it, keyed by dataset feature names. Decoding
never unpickles: a frame is JSON plus typed arrays (`apprentice.deploy.remote.wire`), weights are a
safetensors buffer, so the worst a malformed message can do is raise `TransportError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice.deploy import DeployError
from apprentice.deploy.remote.wire import decode_frame, encode_frame
from apprentice.rl.transport import TransportError

NEXT_PREFIX = "next."  # next.observation.* on an episode's last transition


@dataclass
class Transition:
    observation: dict[str, np.ndarray]  # the observation the action was chosen from
    action: np.ndarray  # the action executed (the operator's during an intervention)
    reward: float
    terminated: bool
    truncated: bool = False
    is_intervention: bool = False  # lerobot's complementary_info.is_intervention
    success: bool = False
    next_observation: dict[str, np.ndarray] | None = None  # required when the episode ends here
    seq: int = -1  # assigned by the actor client: per-session order, dedupe on the learner
    info: dict[str, Any] = field(default_factory=dict)  # small JSON-able extras (discrete_penalty, …)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def __post_init__(self) -> None:
        if self.done and self.next_observation is None:
            raise TransportError("a transition that ends its episode needs next_observation (the final one)")

    def features(self) -> dict[str, dict[str, Any]]:
        """The handshake's feature table: each observation key and ``action``."""
        from apprentice.rl.transport.protocol import feature_table

        return feature_table({**self.observation, "action": self.action})


def encode_transition(t: Transition) -> bytes:
    arrays = {**t.observation, "action": np.asarray(t.action, dtype=np.float32)}
    if t.next_observation is not None:
        arrays.update({NEXT_PREFIX + k: v for k, v in t.next_observation.items()})
    header = {"type": "transition", "seq": t.seq, "reward": float(t.reward), "terminated": bool(t.terminated),
              "truncated": bool(t.truncated), "is_intervention": bool(t.is_intervention),
              "success": bool(t.success), "info": t.info}
    try:
        return encode_frame(header, arrays)
    except DeployError as exc:
        raise TransportError(f"cannot send transition {t.seq}: {exc}") from exc


def decode_transition(frame: bytes) -> Transition:
    header, arrays = _decode(frame, "transition")
    try:
        nxt = {k[len(NEXT_PREFIX):]: v for k, v in arrays.items() if k.startswith(NEXT_PREFIX)}
        obs = {k: v for k, v in arrays.items() if not k.startswith(NEXT_PREFIX) and k != "action"}
        return Transition(obs, arrays["action"], float(header["reward"]), bool(header["terminated"]),
                          bool(header["truncated"]), bool(header["is_intervention"]), bool(header["success"]),
                          nxt or None, int(header["seq"]), dict(header.get("info") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise TransportError(f"malformed transition frame: {exc!r} missing or wrong") from exc


def encode_message(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> bytes:
    return encode_frame(header, arrays)


def decode_message(frame: bytes, kind: str) -> dict[str, Any]:
    return _decode(frame, kind)[0]


def _decode(frame: bytes, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        header, arrays = decode_frame(frame)
    except DeployError as exc:
        raise TransportError(str(exc)) from exc
    if header.get("type") != kind:
        raise TransportError(f"expected a {kind!r} frame, got {header.get('type')!r}")
    return header, arrays


# ------------------------------------------------------------------------------------------- weights
def encode_parameters(step: int, state_dict: Mapping[str, Any]) -> bytes:
    """Learner step + the actor's weights (a flat name -> tensor dict) as one frame."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    blob = np.frombuffer(save(tensors), dtype=np.uint8)
    return encode_frame({"type": "parameters", "step": int(step)}, {"safetensors": blob})


def decode_parameters(frame: bytes) -> tuple[int, dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    header, arrays = _decode(frame, "parameters")
    try:
        return int(header["step"]), load(arrays["safetensors"].tobytes())
    except (KeyError, SafetensorError) as exc:
        raise TransportError(f"malformed parameters frame: {exc}") from exc
