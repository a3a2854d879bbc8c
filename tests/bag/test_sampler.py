"""LatestSampler: latest at/before the tick, within max_age; never the future; counted drops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from apprentice.bag import LatestSampler

MS = 1_000_000


@dataclass
class Spec:
    key: str
    max_age_s: float = 0.05
    required: bool = True


def test_never_uses_a_future_message() -> None:
    s = LatestSampler([Spec("a")])
    s.push("a", 100 * MS, 1)
    s.push("a", 133 * MS, 2)
    assert s.sample(132 * MS) == {"a": 1}
    assert s.sample(133 * MS) == {"a": 2}


def test_sampled_stamps_name_the_values_used_not_the_newest_pushed() -> None:
    s = LatestSampler([Spec("a"), Spec("b", required=False)])
    s.push("a", 100 * MS, 1)
    s.push("b", 90 * MS, 7)
    s.push("a", 140 * MS, 2)  # arrived before the tick was processed, but stamped after it
    assert s.sample(120 * MS) == {"a": 1, "b": 7}
    assert s.sampled_stamps == {"a": 100 * MS, "b": 90 * MS}
    assert s.sample(300 * MS) is None  # a is stale by then
    assert s.sampled_stamps == {"a": 100 * MS, "b": 90 * MS}  # a failed sample leaves the last one


def test_stale_and_missing_required_drop_the_tick() -> None:
    s = LatestSampler([Spec("a"), Spec("b", max_age_s=0.01)])
    s.push("a", 0, 1)
    assert s.sample(0) is None and s.stale_keys(0) == ["b"]
    s.push("b", 0, 5)
    assert s.sample(5 * MS) == {"a": 1, "b": 5}
    assert s.stale_keys(20 * MS) == ["b"]  # b older than 10 ms
    assert s.sample(20 * MS) is None
    assert s.stale_keys(60 * MS) == ["a", "b"]


def test_optional_feature_never_drops() -> None:
    s = LatestSampler([Spec("a"), Spec("opt", required=False)])
    s.push("a", 0, 1)
    assert s.sample(0) == {"a": 1}  # never seen: left out
    s.push("opt", 0, 7)
    s.push("a", 1000 * MS, 2)
    assert s.sample(1000 * MS) == {"a": 2, "opt": 7}  # stale but optional: latest value


def test_out_of_order_and_duplicates() -> None:
    s = LatestSampler([Spec("a", max_age_s=1.0)])
    for t, v in [(30, "c"), (10, "a"), (20, "b"), (20, "b2")]:
        s.push("a", t * MS, v)
    assert s.duplicates == {"a": 1}
    assert [s.sample(t * MS)["a"] for t in (10, 15, 20, 25, 30)] == ["a", "a", "b2", "b2", "c"]


def test_jittered_stamps_on_a_grid() -> None:
    """30 Hz grid, 50 Hz jittered source: each tick gets the newest sample not after it."""
    rng = np.random.default_rng(0)
    stamps = np.sort(np.arange(0, 2000, 20) * MS + rng.integers(-4 * MS, 4 * MS, 100))
    s = LatestSampler([Spec("j", max_age_s=0.03)])
    for i, t in enumerate(stamps):
        s.push("j", int(t), i)
    for k in range(1, 59):
        tick = round(k * 1e9 / 30) + 10 * MS
        got = s.sample(tick)
        expected = int(np.searchsorted(stamps, tick, side="right") - 1)
        assert got == {"j": expected}
        assert stamps[expected] <= tick


def test_history_is_pruned_and_bounded() -> None:
    s = LatestSampler([Spec("a", max_age_s=100)], max_history=8)
    for t in range(100):
        s.push("a", t, t)
    assert len(s._stamps["a"]) == 8
    s.sample(97)
    assert s._stamps["a"] == [97, 98, 99]


def test_unknown_key() -> None:
    s = LatestSampler([Spec("a")])
    with pytest.raises(KeyError, match="unknown feature 'b'"):
        s.push("b", 0, 1)
