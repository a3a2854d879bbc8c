"""The bounded frame cache: the disk tier gives the in-memory cache's very batches, stays within its memory
budget on data larger than it, is reused across runs, and resumes mid-epoch (train/frame_store.py,
train/cache_plan.py, train/data_position.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import policy_flags

from apprentice.dataset import LeRobotDataset
from apprentice.policies.image_resize import resize_frames
from apprentice.train import TrainError
from apprentice.train.cache_plan import GIB, plan_cache
from apprentice.train.cli import main
from apprentice.train.data import FrameCache, Prefetcher, SampleOrder
from apprentice.train.frame_store import DiskFrames
from apprentice.train.reports import read_metrics

KEYS = ["observation.state", "action"]
IMG = "observation.images.top"
DELTAS = {"action": list(range(-1, 6)), IMG: [-1, 0], "observation.state": [-1, 0]}


def _cache(ds, tmp: Path, storage: str, **kw) -> FrameCache:
    return FrameCache(ds, KEYS, [IMG], DELTAS, 2, "cpu", storage=storage, cache_root=tmp, **kw)


@pytest.mark.parametrize("shape", [None, (3, 24, 40)])
def test_disk_cache_gives_the_memory_caches_batches(tiny_dataset, tmp_path, shape):
    ds = LeRobotDataset(tiny_dataset)
    shapes = {IMG: shape} if shape else None
    memory = _cache(ds, tmp_path, "memory", image_shapes=shapes)
    disk = _cache(ds, tmp_path, "disk", image_shapes=shapes, num_workers=3, chunk_frames=5)
    native = torch.from_numpy(np.concatenate([ds.episode_frames(e, IMG) for e in ds.episodes])).permute(0, 3, 1, 2)
    expected = resize_frames(native, shape[1:]) if shape else native
    assert torch.equal(memory.frames[IMG], expected)  # 3 decode workers, 5-frame chunks: the same pixels
    order = SampleOrder(len(memory), batch_size=5, seed=7)
    for ids in [next(order.batches(0)), torch.tensor([0, 1, 20, 21, 22, 43, 65])]:  # episode edges: padding
        a, b = memory.gather(ids), disk.gather(ids)
        assert a.keys() == b.keys() and f"{IMG}_is_pad" in a
        assert all(torch.equal(a[k], b[k]) for k in a)
    disk.close()


def test_disk_cache_is_reused_and_keyed_by_episodes_and_size(tiny_dataset, tmp_path):
    ds = LeRobotDataset(tiny_dataset)
    lines: list[str] = []
    _cache(ds, tmp_path, "disk", log=lines.append).close()
    _cache(ds, tmp_path, "disk", log=lines.append).close()
    assert lines[0].startswith("decoding 72 frames") and lines[1].startswith("reusing")
    _cache(LeRobotDataset(tiny_dataset, episodes=[0, 2]), tmp_path, "disk").close()
    _cache(ds, tmp_path, "disk", image_shapes={IMG: (3, 24, 32)}).close()
    dirs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert len(dirs) == 3 and any(d.startswith("top-24x32-") for d in dirs)
    sizes = sorted(p.stat().st_size for p in tmp_path.glob("top-48x64-*/frames.u8"))
    assert sizes == [48 * 3 * 48 * 64, 72 * 3 * 48 * 64] and not list(tmp_path.rglob("*.partial"))


def test_plan_picks_memory_then_disk_and_names_the_flags():
    cpu = torch.device("cpu")
    plan = plan_cache("auto", 1.0, cpu, frames_bytes=GIB // 2, frame_bytes=2**20, batch_bytes=2**20, workers=2)
    assert (plan.storage, plan.device.type) == ("memory", "cpu")
    plan = plan_cache("auto", 0.25, cpu, frames_bytes=GIB // 2, frame_bytes=2**20, batch_bytes=2**20, workers=2)
    assert plan.storage == "disk" and plan.chunk_frames >= 1
    assert plan_cache("auto", 0, cpu, GIB, 2**20, 2**20, 2).storage == "disk"  # 0: every frame on disk
    with pytest.raises(TrainError, match=r"--cache_max_gb=0\.01 \(10\.2 MiB\).*--batch_size"):
        plan_cache("auto", 0.01, cpu, frames_bytes=GIB, frame_bytes=2**20, batch_bytes=8 * 2**20, workers=2)


# A child process, so that its peak RSS is the data path's alone: it fills a disk (or memory) cache over a
# dataset whose frames are several times the budget and draws one whole epoch of batches from it.
_CHILD = textwrap.dedent("""
    import json, sys, torch
    from apprentice.dataset import LeRobotDataset
    from apprentice.train.cache_plan import plan_cache
    from apprentice.train.data import FrameCache, Prefetcher, SampleOrder

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    root, cache_root, budget_gb = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.set_num_threads(1)
    ds = LeRobotDataset(root)
    img = "observation.images.top"
    deltas = {"action": list(range(8)), "observation.state": [-1, 0]}
    frames = FrameCache.nbytes(ds, [img])
    plan = plan_cache("auto", budget_gb, torch.device("cpu"), frames, frames // ds.num_frames,
                      4 * frames // ds.num_frames, 2)
    def epoch(dataset, storage, root, batches=None):
        cache = FrameCache(dataset, ["observation.state", "action"], [img], deltas, 0, "cpu", storage=storage,
                           cache_root=root, num_workers=2, chunk_frames=plan.chunk_frames)
        order = SampleOrder(len(cache), batch_size=4, seed=0)
        source = Prefetcher(cache, order.batches(0))
        seen = [source.next()["observation.state"][:, 1, 0].tolist() for _ in range(batches or order.per_epoch)]
        source.close()
        return len(cache), sum(seen, [])

    # Warm-up on one episode: the libraries' code and tables (FFmpeg's decoder, torch's kernels), the
    # threads' stacks and malloc arenas are paid once per process, whatever the data's size.
    epoch(LeRobotDataset(root, episodes=[0]), plan.storage, cache_root + "/warm-up", batches=3)
    try:
        open("/proc/self/clear_refs", "w").write("5")  # peak RSS counts from here
    except OSError:
        pass
    base = rss("VmRSS")
    n, seen = epoch(ds, plan.storage, cache_root)
    print(json.dumps({"storage": plan.storage, "frames": frames, "grew": rss("VmHWM") - base,
                      "samples": len(seen), "unique": len(set(seen)), "n": n}))
""")


def _write_counting_dataset(root: Path, episodes: int, length: int, hw: tuple[int, int]) -> Path:
    """Frames of moving gradients; observation.state[0] = the frame's global index (to count)."""
    from apprentice.dataset import DatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["index", "t"]},
        IMG: {"dtype": "video", "shape": [*hw, 3], "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
    }
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]]
    n = 0
    with DatasetWriter.create(root, features=features, fps=30, robot_type="test_arm", vcodec="h264") as w:
        for _ in range(episodes):
            for t in range(length):
                img = np.stack([(xx + 3 * t) % 256, (yy + n) % 256, np.full_like(xx, 40)], -1).astype(np.uint8)
                state = np.array([n, t], np.float32)
                w.add_frame({"observation.state": state, IMG: img, "action": state})
                n += 1
            w.save_episode(task="count")
    return root


def test_disk_cache_stays_within_its_budget_and_yields_each_sample_once(tmp_path):
    root = _write_counting_dataset(tmp_path / "big", episodes=4, length=60, hw=(240, 320))  # 53 MiB decoded
    budget_gb = 12 / 1024

    def child(budget: float) -> dict:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        run = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(tmp_path / "cache"), str(budget)],
                             capture_output=True, text=True, env=env, timeout=240)
        assert run.returncode == 0, run.stderr[-2000:]
        return json.loads(run.stdout.strip().splitlines()[-1])

    bounded = child(budget_gb)
    assert bounded["storage"] == "disk" and bounded["frames"] > 4 * budget_gb * GIB
    assert bounded["grew"] <= budget_gb * GIB, bounded
    # Every sample of the epoch exactly once (the state's first value is the frame's index; drop_last
    # leaves out fewer than one batch).
    assert bounded["unique"] == bounded["samples"] > bounded["n"] - 4
    # The same data in memory does exceed that budget: the measurement sees a cache.
    unbounded = child(1.0)
    assert unbounded["storage"] == "memory" and unbounded["grew"] > 2 * budget_gb * GIB, unbounded


def _flags(root: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [*policy_flags("act"), f"--dataset.root={root}", f"--output_dir={out}", "--batch_size=4",
            "--log_freq=1", "--save_freq=2", "--policy.device=cpu", "--seed=5", f"--steps={steps}",
            "--policy.lr=1e-3", *extra]


def test_disk_path_trains_like_memory_and_resumes_mid_epoch(tiny_dataset, tmp_path, monkeypatch):
    import shutil

    from apprentice.train.frame_store import frames_cache_root

    # The disk run names its dataset by repo id, read from HF_LEROBOT_HOME without the network, and puts
    # its frame cache under HF_DATASETS_CACHE.
    shutil.copytree(tiny_dataset, tmp_path / "lerobot_home" / "someone" / "tiny")
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: any Hub request would fail
    assert frames_cache_root() == tmp_path / "datasets_cache" / "apprentice_frames"
    assert frames_cache_root("~/elsewhere") == Path.home() / "elsewhere"  # --cache_dir wins
    disk = ["--cache_max_gb=0", "--num_workers=2"]

    assert main(_flags(tiny_dataset, tmp_path / "mem", 4)) == 0
    by_id = [f for f in _flags(tiny_dataset, tmp_path / "disk", 2, *disk) if not f.startswith("--dataset.root")]
    by_id.append("--dataset.repo_id=someone/tiny")
    assert main(by_id) == 0
    assert len(list((tmp_path / "datasets_cache" / "apprentice_frames").glob("top-48x64-*/frames.u8"))) == 1
    state = tmp_path / "disk" / "checkpoints" / "000002" / "training_state" / "data_position.json"
    position = json.loads(state.read_text())
    assert position["micro_batch"] == 2 and position["epoch"] == 0 and position["batches_per_epoch"] == 18
    assert main([f"--output_dir={tmp_path / 'disk'}", "--resume=true", "--steps=4"]) == 0
    # The disk cache hands out the memory cache's batches: the same losses, bit for bit, across the resume.
    assert [r["loss"] for r in read_metrics(tmp_path / "disk")] == [r["loss"] for r in read_metrics(tmp_path / "mem")]
    a, b = (load_file(str(tmp_path / run / "checkpoints/last/pretrained_model/model.safetensors"))
            for run in ("disk", "mem"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_position_follows_the_saved_data_position(tiny_dataset, tmp_path):
    from apprentice.train.data_position import DATA_POSITION, data_position, resume_position

    ds = LeRobotDataset(tiny_dataset)
    cache = _cache(ds, tmp_path, "memory")
    order = SampleOrder(len(cache), batch_size=4, seed=1)
    source = Prefetcher(cache, order.batches(0))
    for _ in range(order.per_epoch + 3):  # into the second epoch
        source.next()
    saved = data_position(source, order.per_epoch, 4, 1, 1)
    source.close()
    (tmp_path / DATA_POSITION).write_text(json.dumps(saved))
    assert saved["epoch"] == 1 and saved["batch_in_epoch"] == 3
    assert resume_position(tmp_path, 0, order.per_epoch, 4) == order.per_epoch + 3
    # Another --batch_size on resume: the same epoch, at the samples already seen (12 of them -> batch 1 of 8).
    assert resume_position(tmp_path, 0, 7, 8) == 7 + 1
    assert resume_position(None, 11, order.per_epoch, 4) == 11  # older checkpoints: step x accumulation
    (tmp_path / DATA_POSITION).write_text("{")
    with pytest.raises(TrainError, match=r"data_position\.json is unreadable"):
        resume_position(tmp_path, 0, order.per_epoch, 4)


def test_truncated_cache_file_is_an_error(tiny_dataset, tmp_path):
    cache = _cache(LeRobotDataset(tiny_dataset), tmp_path, "disk")
    store = cache.frames[IMG]
    assert isinstance(store, DiskFrames)
    path = store.path
    cache.close()
    os.truncate(path, 10 * 3 * 48 * 64)
    broken = DiskFrames(path, (72, 3, 48, 64))
    with pytest.raises(TrainError, match="ended early"):
        broken[torch.tensor([50])]
    broken.close()
    # A later run sees the wrong size and decodes it again.
    again = _cache(LeRobotDataset(tiny_dataset), tmp_path, "disk")
    assert path.stat().st_size == 72 * 3 * 48 * 64
    again.close()



def test_plan_on_cuda_uses_the_gpus_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * GIB, 80 * GIB))
    gpu = torch.device("cuda", 0)

    def plan(frames_gib: float, cache_device: str = "auto", budget: float | None = 64.0):
        return plan_cache(cache_device, budget, gpu, int(frames_gib * GIB), 2**20, 2**20, 2)

    assert plan(1.0, budget=None).device == gpu  # under a third of free GPU memory
    assert plan(3.0, budget=None).device.type == "cpu"  # over it: host memory
    assert plan(3.0, "cuda", budget=None).device == gpu  # asked for: up to 90% of free
    assert plan(5.0).device == gpu and plan(5.5).device.type == "cpu"  # --cache_max_gb: still <= 90% of free
    assert plan(2.0, "cpu").device.type == "cpu"
    with pytest.raises(TrainError, match=r"--cache_device=cuda: the frames take 6\.00 GiB.*--cache_max_gb"):
        plan(6.0, "cuda")
