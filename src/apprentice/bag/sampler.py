"""Time alignment: the latest message at or before a tick, within a freshness window.

Shared by the offline converter (bag -> fps grid) and the online policy node (topics -> observation), so
training data and deployed observations are aligned by the same rule: never a message from the future,
never a silently repeated stale one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any, Protocol


class _Spec(Protocol):
    key: str
    required: bool
    max_age_s: float


class LatestSampler:
    """Keeps a short, stamp-sorted history per feature and answers 'latest at/before tick'.

    Messages may arrive out of order (they are inserted by stamp); a repeated stamp replaces the earlier
    value (the later arrival wins) and is counted in `duplicates`. Ticks passed to `sample` must not
    decrease: history older than the value used for a tick is pruned, which bounds memory online.
    """

    def __init__(self, specs: Iterable[_Spec], max_history: int = 1024) -> None:
        specs = list(specs)
        if not specs:
            raise ValueError("LatestSampler needs at least one feature spec")
        self._max_age_ns = {s.key: round(s.max_age_s * 1e9) for s in specs}
        self._required = {s.key for s in specs if s.required}
        self._max_history = max_history
        self._stamps: dict[str, list[int]] = {}
        self._values: dict[str, list[Any]] = {}
        self.duplicates: dict[str, int] = {}
        self.sampled_stamps: dict[str, int] = {}  # stamp of each value the last successful sample() used

    @property
    def keys(self) -> list[str]:
        return list(self._max_age_ns)

    def push(self, key: str, stamp_ns: int, value: Any) -> None:
        """Add one value stamped `stamp_ns` (the message's header stamp, or its receive time)."""
        if key not in self._max_age_ns:
            raise KeyError(f"LatestSampler: unknown feature '{key}'; known: {self.keys}")
        stamps = self._stamps.setdefault(key, [])
        values = self._values.setdefault(key, [])
        stamp_ns = int(stamp_ns)
        if not stamps or stamp_ns > stamps[-1]:  # the common, in-order case
            stamps.append(stamp_ns)
            values.append(value)
        else:
            i = bisect.bisect_left(stamps, stamp_ns)
            if i < len(stamps) and stamps[i] == stamp_ns:
                values[i] = value
                self.duplicates[key] = self.duplicates.get(key, 0) + 1
            else:
                stamps.insert(i, stamp_ns)
                values.insert(i, value)
        if len(stamps) > self._max_history:
            del stamps[0], values[0]

    def _latest(self, key: str, tick_ns: int) -> int:
        """Index of the latest entry at or before tick, or -1."""
        return bisect.bisect_right(self._stamps.get(key, []), tick_ns) - 1

    def _fresh(self, key: str, tick_ns: int) -> bool:
        i = self._latest(key, tick_ns)
        return i >= 0 and tick_ns - self._stamps[key][i] <= self._max_age_ns[key]

    def stale_keys(self, tick_ns: int) -> list[str]:
        """Required features with no value at/before `tick_ns` within their max_age."""
        return [k for k in self._max_age_ns if k in self._required and not self._fresh(k, int(tick_ns))]

    def sample(self, tick_ns: int) -> dict[str, Any] | None:
        """Latest value of every feature at/before `tick_ns`; None when a required one is stale/missing.

        An optional feature that is stale still gives its latest value; one never seen is left out.
        """
        tick_ns = int(tick_ns)
        if self.stale_keys(tick_ns):
            return None
        out: dict[str, Any] = {}
        stamps: dict[str, int] = {}
        for key in self._max_age_ns:
            i = self._latest(key, tick_ns)
            if i < 0:
                continue
            out[key], stamps[key] = self._values[key][i], self._stamps[key][i]
            del self._stamps[key][:i], self._values[key][:i]
        self.sampled_stamps = stamps
        return out
