"""SAC as the algorithm of the two-process HIL-SERL run: `algorithm: {type: sac, ...}` in the run config
(`apprentice learner` / `apprentice actor`). The rest of the section is SACConfig fields (lerobot's names),
plus `device` and `stats` (`{key: {min: [...], max: [...]}}` for states and the action).

Both machines build the same networks from the handshake's features, so the actor can load the weights the
learner pushes. Without `stats`, states are taken as already in [-1, 1] and the action as the env's
[-1, 1] box — give the real bounds for a real robot (they are frozen into the checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from apprentice.policies import features_from_dataset, make_config, make_policy
from apprentice.policies.sac.algorithm import SACAlgorithm

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def make_sac(config: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]) -> SACAlgorithm:
    fields = dict(config)
    given = {k: dict(v) for k, v in (fields.pop("stats", None) or {}).items()}
    device = fields.pop("device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    as_dataset = {
        key: {"dtype": "video" if key.startswith("observation.images.") else "float32", "shape": list(f["shape"])}
        for key, f in features.items()
    }
    inputs, _ = features_from_dataset(as_dataset)
    # As lerobot: with a discrete gripper the `action` feature is the continuous part.
    dims = int(features["action"]["shape"][0]) - (1 if fields.get("num_discrete_actions") else 0)
    fields.setdefault("input_features", {k: {"type": f.type, "shape": list(f.shape)} for k, f in inputs.items()})
    fields.setdefault("output_features", {"action": {"type": "ACTION", "shape": [dims]}})
    fields["device"] = str(device)
    stats: dict[str, dict[str, torch.Tensor]] = {}
    for key, feature in inputs.items():
        if feature.type == "VISUAL":
            stats[key] = {k: torch.tensor(v).reshape(3, 1, 1) for k, v in IMAGENET.items()}
        else:
            n = int(feature.shape[0])
            stats[key] = {k: torch.tensor(v, dtype=torch.float32) for k, v in given.get(key, {}).items()} or {
                "min": -torch.ones(n), "max": torch.ones(n)}
    stats["action"] = {k: torch.tensor(v, dtype=torch.float32)[:dims] for k, v in given.get("action", {}).items()} or {
        "min": -torch.ones(dims), "max": torch.ones(dims)}
    policy = make_policy(make_config("sac", **fields), stats)
    return SACAlgorithm(policy, device)
