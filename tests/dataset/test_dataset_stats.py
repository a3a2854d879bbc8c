"""Stats: equal to numpy reference computations and to what lerobot 0.4.4 stored for its own dataset."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_helpers import REF_ROOT

from apprentice.dataset import LeRobotDataset
from apprentice.dataset.stats import (
    STAT_KEYS,
    aggregate_stats,
    image_stats,
    numeric_stats,
    stats_from_json,
    stats_from_row,
)


def test_episode_stats_equal_lerobots_bit_for_bit() -> None:
    data = pq.read_table(REF_ROOT / "data/chunk-000/file-000.parquet")
    episodes = pq.read_table(REF_ROOT / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    per_episode = []
    for ep in episodes:
        lo, hi = ep["dataset_from_index"], ep["dataset_to_index"]
        ours = {}
        for key in ("observation.state", "action"):
            ours[key] = numeric_stats(data.column(key).combine_chunks().flatten().to_numpy().reshape(-1, 6)[lo:hi])
        for key in ("frame_index", "episode_index", "index", "task_index"):
            ours[key] = numeric_stats(data.column(key).to_numpy()[lo:hi])
        ours["timestamp"] = numeric_stats(np.arange(hi - lo) / 30)  # lerobot's buffer holds i / fps as float64
        stored = stats_from_row(ep)
        for key, stats in ours.items():
            for stat in STAT_KEYS:
                np.testing.assert_array_equal(np.asarray(stats[stat], np.float64), stored[key][stat],
                                              err_msg=f"episode {ep['episode_index']} {key} {stat}")
        per_episode.append(ours)
    # Folding episode by episode (as lerobot's writer does) reproduces its stats.json exactly.
    folded = per_episode[0]
    for ep_stats in per_episode[1:]:
        folded = aggregate_stats([folded, ep_stats])
    stored = stats_from_json(json.loads((REF_ROOT / "meta/stats.json").read_text()))
    for key in folded:
        for stat in STAT_KEYS:
            np.testing.assert_array_equal(np.asarray(folded[key][stat], np.float64), stored[key][stat])


def test_numeric_stats_equal_numpy_reference() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(5.0, 2.0, size=(4000, 3))
    stats = numeric_stats(values)
    np.testing.assert_array_equal(stats["min"], values.min(0))
    np.testing.assert_array_equal(stats["max"], values.max(0))
    np.testing.assert_allclose(stats["mean"], values.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], values.std(0), rtol=1e-9)
    assert stats["count"].tolist() == [4000]
    # The histogram estimator lands within one 1/5000-range bin of the ceil(q*N)-th order statistic.
    bin_width = (values.max(0) - values.min(0)) / 5000
    ordered = np.sort(values, axis=0)
    for q, key in zip((0.01, 0.10, 0.50, 0.90, 0.99), ("q01", "q10", "q50", "q90", "q99")):
        k = int(np.ceil(q * len(values)))
        assert np.all(stats[key] >= ordered[k - 2] - bin_width) and np.all(stats[key] <= ordered[k] + bin_width)


def test_aggregation_equals_stats_of_the_concatenation() -> None:
    rng = np.random.default_rng(4)
    parts = [rng.uniform(-3, 9, size=(n, 2)) for n in (17, 250, 3)]
    agg = aggregate_stats([{"x": numeric_stats(p)} for p in parts])["x"]
    whole = np.concatenate(parts)
    np.testing.assert_allclose(agg["mean"], whole.mean(0), rtol=1e-12)
    np.testing.assert_allclose(agg["std"], whole.std(0), rtol=1e-10)
    np.testing.assert_array_equal(agg["min"], whole.min(0))
    np.testing.assert_array_equal(agg["max"], whole.max(0))
    assert agg["count"].tolist() == [270]


def test_image_stats_are_per_channel_in_unit_range() -> None:
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, size=(20, 16, 24, 3), dtype=np.uint8)
    stats = image_stats(frames)
    for key in STAT_KEYS:
        assert stats[key].shape == ((1,) if key == "count" else (3, 1, 1)), key
    as_float = frames.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(stats["mean"].ravel(), as_float.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"].ravel(), as_float.std(0), rtol=1e-9)  # true std (see stats.py)
    np.testing.assert_allclose(stats["max"].ravel(), as_float.max(0))
    assert stats["count"].tolist() == [20]


def test_written_dataset_stats_match_its_data(make_dataset) -> None:
    root = make_dataset([9, 14, 5])
    ds = LeRobotDataset(root)
    state = ds.column("observation.state")
    stats = ds.meta.stats["observation.state"]
    np.testing.assert_allclose(stats["mean"], state.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], state.std(0), rtol=1e-5)
    np.testing.assert_array_equal(stats["min"], state.min(0))
    assert stats["count"].tolist() == [28]
    assert ds.meta.stats["index"]["max"].tolist() == [27]
    image = ds.meta.stats["observation.images.top"]
    assert image["mean"].shape == (3, 1, 1) and 0 <= image["min"].min() <= image["max"].max() <= 1
    # Green channel is episode * 60 / 255 everywhere: the per-episode stats must say so.
    green = [ep["stats/observation.images.top/mean"][1][0][0] for ep in ds.meta.episodes]
    assert green == pytest.approx([0.0, 60 / 255, 120 / 255])
    assert "language.note" not in ds.meta.stats


def test_byte_histogram_equals_numpy_histogram() -> None:
    from apprentice.dataset.stats import NUM_BINS, _byte_histogram

    rng = np.random.default_rng(6)
    for lo, hi in ((0, 255), (3, 3), (10, 200), (0, 1)):
        values = rng.integers(lo, hi + 1, size=20_000).astype(np.uint8)
        edges = np.linspace(values.min() - 1e-10, values.max() + 1e-10, NUM_BINS + 1)
        counts = np.bincount(values, minlength=256)
        np.testing.assert_array_equal(_byte_histogram(counts, edges), np.histogram(values, bins=edges)[0])
        narrow = np.linspace(50.0, 120.0, 101)  # values outside the edges are dropped, last edge inclusive
        np.testing.assert_array_equal(_byte_histogram(counts, narrow), np.histogram(values, bins=narrow)[0])


def test_image_fast_path_equals_generic_stats() -> None:
    from apprentice.dataset.stats import vector_stats

    rng = np.random.default_rng(7)
    frames = rng.integers(20, 240, size=(12, 10, 14, 3), dtype=np.uint8)
    fast = image_stats(frames)
    generic = vector_stats(frames.reshape(-1, 3), squares_dtype=np.float64)
    for key in STAT_KEYS:
        if key != "count":
            np.testing.assert_allclose(fast[key].ravel(), np.asarray(generic[key], np.float64) / 255.0,
                                       rtol=1e-12, err_msg=key)
