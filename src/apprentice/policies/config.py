"""The fields every policy config shares, and how configs become (and come back from) config.json.

Field names, order and defaults follow LeRobot's `PreTrainedConfig`, so a config.json written by
`lerobot-train` loads here and ours loads there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

log = logging.getLogger(__name__)

FEATURE_TYPES = ("STATE", "VISUAL", "ENV", "ACTION", "LANGUAGE", "REWARD")
NORMALIZATION_MODES = ("IDENTITY", "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10")
OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGE_PREFIX = "observation.images."
ACTION = "action"


class PolicyError(Exception):
    """A policy could not be built, loaded, saved or run; the message says which file/field and what to do."""


@dataclass(frozen=True)
class PolicyFeature:
    """One input or output of a policy: its kind (`STATE`, `VISUAL`, …) and its shape (images: C, H, W)."""

    type: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise PolicyError(f"feature type {self.type!r} is not one of {FEATURE_TYPES}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


def features_from_dataset(
    dataset_features: dict[str, dict],
) -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """Split a dataset's info.json features into policy (inputs, outputs) the way LeRobot does."""
    inputs: dict[str, PolicyFeature] = {}
    outputs: dict[str, PolicyFeature] = {}
    for key, ft in dataset_features.items():
        shape = tuple(ft["shape"])
        if ft["dtype"] in ("video", "image"):
            names = list(ft.get("names") or [])
            # Datasets store (H, W, C); policies see (C, H, W).
            if len(shape) == 3 and names[:1] != ["channels"]:
                shape = (shape[2], shape[0], shape[1])
            inputs[key] = PolicyFeature("VISUAL", shape)
        elif key == OBS_ENV_STATE:
            inputs[key] = PolicyFeature("ENV", shape)
        elif key.startswith("observation"):
            inputs[key] = PolicyFeature("STATE", shape)
        elif key == ACTION:
            outputs[key] = PolicyFeature("ACTION", shape)
    return inputs, outputs


@dataclass
class PolicyConfig:
    """Base of every policy config (LeRobot's PreTrainedConfig fields, same order)."""

    type: ClassVar[str] = ""

    n_obs_steps: int = 1
    input_features: dict[str, PolicyFeature] = field(default_factory=dict)
    output_features: dict[str, PolicyFeature] = field(default_factory=dict)
    device: str | None = None
    use_amp: bool = False
    use_peft: bool = False
    push_to_hub: bool = False
    repo_id: str | None = None
    private: bool | None = None
    tags: list[str] | None = None
    license: str | None = None
    pretrained_path: str | None = None

    def __post_init__(self) -> None:
        self.input_features = _coerce_features(self.input_features)
        self.output_features = _coerce_features(self.output_features)
        mapping = getattr(self, "normalization_mapping", {})
        for kind, mode in mapping.items():
            if mode not in NORMALIZATION_MODES:
                raise PolicyError(
                    f"normalization_mapping[{kind!r}] = {mode!r}; use one of {NORMALIZATION_MODES}"
                )

    # --- views LeRobot users know -------------------------------------------------------------------
    @property
    def image_features(self) -> dict[str, PolicyFeature]:
        return {k: f for k, f in self.input_features.items() if f.type == "VISUAL"}

    @property
    def robot_state_feature(self) -> PolicyFeature | None:
        return self.input_features.get(OBS_STATE)

    @property
    def env_state_feature(self) -> PolicyFeature | None:
        return self.input_features.get(OBS_ENV_STATE)

    @property
    def action_feature(self) -> PolicyFeature:
        if ACTION not in self.output_features:
            raise PolicyError(f"{self.type} config has no 'action' output feature; set output_features")
        return self.output_features[ACTION]

    # Which dataset frames (offsets in frames from the current one) a training sample needs.
    @property
    def observation_delta_indices(self) -> list[int] | None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        raise NotImplementedError

    # Offsets of the `next.reward` frames a sample needs; None = the policy does not learn from rewards.
    @property
    def reward_delta_indices(self) -> list[int] | None:
        return None

    # --- (de)serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("input_features", "output_features"):
                value = {k: {"type": v.type, "shape": list(v.shape)} for k, v in value.items()}
            out[f.name] = _jsonable(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> PolicyConfig:
        data = dict(data)
        data.pop("type", None)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            # Newer LeRobot versions add fields; they do not change the model we build.
            log.warning("%s: ignoring fields this %s config does not know: %s", source, cls.type, unknown)
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            default = _default_of(known[name])
            if isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"{source}: invalid {cls.type} config: {exc}") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=4))


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _coerce_features(features: dict[str, Any]) -> dict[str, PolicyFeature]:
    out = {}
    for key, ft in (features or {}).items():
        out[key] = ft if isinstance(ft, PolicyFeature) else PolicyFeature(ft["type"], tuple(ft["shape"]))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
