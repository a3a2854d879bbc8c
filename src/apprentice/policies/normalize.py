"""Feature normalization from dataset statistics, with LeRobot's exact formulas.

The statistics live in non-persistent buffers: model.safetensors holds only model weights (as
LeRobot's does) and the stats are saved beside it in the normalizer processor's safetensors file.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from apprentice.policies.config import PolicyError, PolicyFeature

# LeRobot replaces camera mean/std by ImageNet's when `dataset.use_imagenet_stats` is true (its default).
IMAGENET_STATS = {
    "mean": np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1),
    "std": np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1),
}
_NEEDED = {
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}


Stats = dict[str, dict[str, Tensor]]


def stats_to_tensors(stats: Mapping[str, Mapping[str, object]]) -> Stats:
    """Dataset stats (numpy arrays or nested lists) -> float32 tensors, keyed like stats.json."""
    out: Stats = {}
    for key, per_stat in stats.items():
        out[key] = {name: torch.as_tensor(np.asarray(v, dtype=np.float32)) for name, v in per_stat.items()}
    return out


class Normalizer(nn.Module):
    """Normalizes inputs/targets and unnormalizes outputs according to `norm_map` (feature type -> mode)."""

    def __init__(
        self, features: dict[str, PolicyFeature], norm_map: Mapping[str, str], stats: Stats, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.features = dict(features)
        self.norm_map = dict(norm_map)
        self.eps = eps
        self.stats = {k: {s: v.clone() for s, v in d.items()} for k, d in stats.items()}
        self._modes: dict[str, str] = {}
        for key, ft in self.features.items():
            mode = self.norm_map.get(ft.type, "IDENTITY")
            if mode == "IDENTITY":
                continue
            missing = [s for s in _NEEDED[mode] if s not in self.stats.get(key, {})]
            if missing:
                raise PolicyError(
                    f"{mode} normalization of {key!r} needs stats {missing}, which the dataset/"
                    f"checkpoint does not have; recompute stats (`apprentice dataset repair`)"
                )
            self._modes[key] = mode
            for name in _NEEDED[mode]:
                self.register_buffer(_buffer_name(key, name), self.stats[key][name].float(), persistent=False)

    def _stat(self, key: str, name: str, like: Tensor) -> Tensor:
        return getattr(self, _buffer_name(key, name)).to(dtype=like.dtype)

    def normalize(self, key: str, x: Tensor) -> Tensor:
        mode = self._modes.get(key)
        if mode is None:
            return x
        if mode == "MEAN_STD":
            mean, std = self._stat(key, "mean", x), self._stat(key, "std", x)
            return (x - mean) / (std + self.eps)
        lo, hi = (self._stat(key, n, x) for n in _NEEDED[mode])
        return 2 * (x - lo) / self._span(lo, hi) - 1

    def unnormalize(self, key: str, x: Tensor) -> Tensor:
        mode = self._modes.get(key)
        if mode is None:
            return x
        if mode == "MEAN_STD":
            return x * self._stat(key, "std", x) + self._stat(key, "mean", x)
        lo, hi = (self._stat(key, n, x) for n in _NEEDED[mode])
        return (x + 1) / 2 * self._span(lo, hi) + lo

    def _span(self, lo: Tensor, hi: Tensor) -> Tensor:
        span = hi - lo
        return torch.where(span == 0, torch.full_like(span, self.eps), span)

    def normalize_batch(self, batch: Mapping[str, object]) -> dict[str, object]:
        """A new dict with every known feature normalized; other entries (masks, task) pass through."""
        return {k: self.normalize(k, v) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _buffer_name(key: str, stat: str) -> str:
    return f"{key.replace('.', '__')}__{stat}"
