"""A LeRobotDataset v2.1 built file by file from its published layout (lerobot 0.3.x, CODEBASE_VERSION "v2.1"):

    meta/info.json               codebase_version "v2.1", total_chunks, total_videos, episode path templates
    meta/episodes.jsonl          {"episode_index", "tasks", "length"} per line
    meta/episodes_stats.jsonl    {"episode_index", "stats": {feature: {min, max, mean, std, count}}} per line
    meta/tasks.jsonl             {"task_index", "task"} per line
    data/chunk-000/episode_000000.parquet             one file per episode, HF `datasets` schema metadata
    videos/chunk-000/<key>/episode_000000.mp4         one file per episode per camera (PyAV, as lerobot 0.3)

Nothing of apprentice.dataset is used here, so the fixture cannot inherit a bug of the code it tests.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FPS = 30
CAMERAS = {"observation.images.top": (32, 48), "observation.images.wrist": (24, 32)}
TASKS = ["pick the red cube", "place it in the bowl", "push the cube left"]
# (length, task index of each frame): episode 2 switches task halfway, as a v2.1 episode may.
EPISODES = [(12, [0] * 12), (7, [1] * 7), (15, [0] * 8 + [2] * 7), (9, [2] * 9)]
IMAGE_KEY, IMAGE_SHAPE = "observation.images.front", (20, 28)
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def features() -> dict[str, Any]:
    out: dict[str, Any] = {
        "action": {"dtype": "float32", "shape": [6], "names": NAMES},
        "observation.state": {"dtype": "float32", "shape": [6], "names": NAMES},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    }
    for key, (h, w) in CAMERAS.items():
        out[key] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                    "info": {"video.height": h, "video.width": w, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                             "video.is_depth_map": False, "video.fps": FPS, "video.channels": 3,
                             "has_audio": False}}
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        out[key] = {"dtype": dtype, "shape": [1], "names": None}
    return out


def image(key: str, episode: int, i: int) -> np.ndarray:
    h, w = CAMERAS[key]
    frame = np.zeros((h, w, 3), np.uint8)
    frame[..., 0] = (i * 11 + (40 if key.endswith("wrist") else 0)) % 250
    frame[..., 1] = (episode * 50) % 250
    frame[: h // 2, (i % w) :, 2] = 210
    return frame


def image_frame(episode: int, i: int) -> np.ndarray:
    h, w = IMAGE_SHAPE
    rng = np.random.default_rng(1000 * episode + i)  # noise: PNG keeps it exactly, a lossy codec would not
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def episode_columns(episode: int, start: int) -> dict[str, np.ndarray]:
    length, task_index = EPISODES[episode]
    state = (np.arange(6, dtype=np.float32)[None] + np.arange(length, dtype=np.float32)[:, None] * 0.25
             + 10 * episode)
    return {
        "action": state + 0.5,
        "observation.state": state,
        "next.done": np.arange(length) == length - 1,
        "timestamp": (np.arange(length) / FPS).astype(np.float32),
        "frame_index": np.arange(length, dtype=np.int64),
        "episode_index": np.full(length, episode, dtype=np.int64),
        "index": np.arange(start, start + length, dtype=np.int64),
        "task_index": np.array(task_index, dtype=np.int64),
    }


def _hf_schema(feats: dict[str, Any]) -> pa.Schema:
    """The parquet schema HF `datasets` (lerobot 0.3's writer) gives: Value scalars, Sequence(length=n)
    vectors as fixed_size_list, and the features again in the "huggingface" metadata key."""
    fields, hf = [], {}
    for key, ft in feats.items():
        if ft["dtype"] == "video":
            continue
        if ft["dtype"] == "image":
            fields.append(pa.field(key, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
            hf[key] = {"_type": "Image"}
            continue
        value = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
        if ft["shape"] == [1]:
            fields.append(pa.field(key, value))
            hf[key] = {"dtype": ft["dtype"], "_type": "Value"}
        else:
            fields.append(pa.field(key, pa.list_(value, ft["shape"][0])))
            hf[key] = {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": ft["shape"][0],
                       "_type": "Sequence"}
    return pa.schema(fields, metadata={b"huggingface": json.dumps({"info": {"features": hf}}).encode()})


def _stats(values: np.ndarray) -> dict[str, list]:
    keep = values.ndim == 1  # lerobot 0.3: scalars keep their axis, so every stat has shape (1,)
    out = {name: fn(values, axis=0, keepdims=keep).tolist()
           for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std))}
    return out | {"count": [len(values)]}


def image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per channel over all frames (a v2.1 episode this short samples every frame), as (3, 1, 1) in [0, 1]."""
    chw = frames.transpose(0, 3, 1, 2).astype(np.float64)
    out = {name: (fn(chw, axis=(0, 2, 3), keepdims=True)[0] / 255.0).tolist()
           for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std))}
    return out | {"count": [len(frames)]}


def encode(path: Path, frames: list[np.ndarray], vcodec: str = "libsvtav1", options: dict | None = None,
           time_base: Any = None) -> None:
    """One episode mp4 as lerobot 0.3's encode_video_frames writes it: PyAV, yuv420p, g=2, crf=30."""
    os.environ.setdefault("SVT_LOG", "1")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(vcodec, FPS, options=options or {"g": "2", "crf": "30"})
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = frames[0].shape[:2]
        if time_base is not None:
            stream.time_base = time_base
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if time_base is not None:  # frames at i/fps, stored in a coarser time base
                video_frame.pts, video_frame.time_base = round(i / FPS / time_base), time_base
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode(None))


def png(frame: np.ndarray) -> bytes:
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
    return bytes(codec.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))[0])


def write_v21(root: Path, video_overrides: dict[int, dict[str, Any]] | None = None, cameras: bool = True,
              image_feature: bool = False) -> Path:
    """Write the fixture dataset at `root`. `video_overrides[episode]` passes encode() options for that
    episode's top camera (another codec, another time base); `cameras=False` leaves the cameras out;
    `image_feature` adds IMAGE_KEY, an `image` feature (PNG bytes in the parquet, as lerobot 0.3 embeds them)."""
    feats = {k: ft for k, ft in features().items() if cameras or ft["dtype"] != "video"}
    if image_feature:
        h, w = IMAGE_SHAPE
        feats = {IMAGE_KEY: {"dtype": "image", "shape": [h, w, 3], "names": ["height", "width", "channels"]},
                 **feats}
    schema = _hf_schema(feats)
    (root / "meta").mkdir(parents=True)
    start = 0
    episodes, stats = [], []
    for e, (length, task_index) in enumerate(EPISODES):
        columns = episode_columns(e, start)
        if image_feature:
            image_frames = np.stack([image_frame(e, i) for i in range(length)])
            columns[IMAGE_KEY] = np.array([{"bytes": png(f), "path": f"frame_{i:06d}.png"}
                                           for i, f in enumerate(image_frames)], dtype=object)
        arrays = []
        for f in schema:
            values = columns[f.name]
            if pa.types.is_struct(f.type):
                arrays.append(pa.array(list(values), type=f.type))
            elif pa.types.is_fixed_size_list(f.type):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), f.type.list_size))
            else:
                arrays.append(pa.array(values, type=f.type))
        path = root / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)
        ep_stats = {k: _stats(v) for k, v in columns.items() if k != IMAGE_KEY}
        if image_feature:
            ep_stats[IMAGE_KEY] = image_stats(image_frames)
        for key in CAMERAS if cameras else []:
            frames = [image(key, e, i) for i in range(length)]
            override = (video_overrides or {}).get(e, {}) if key == "observation.images.top" else {}
            encode(root / f"videos/chunk-000/{key}/episode_{e:06d}.mp4", frames, **override)
            ep_stats[key] = image_stats(np.stack(frames))
        episodes.append({"episode_index": e, "tasks": [TASKS[t] for t in dict.fromkeys(task_index)],
                         "length": length})
        stats.append({"episode_index": e, "stats": ep_stats})
        start += length
    for name, rows in (("episodes", episodes), ("episodes_stats", stats),
                       ("tasks", [{"task_index": i, "task": t} for i, t in enumerate(TASKS)])):
        (root / f"meta/{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"codebase_version": "v2.1", "robot_type": "so101_follower", "total_episodes": len(EPISODES),
            "total_frames": start, "total_tasks": len(TASKS), "total_videos": len(EPISODES) * len(CAMERAS) * cameras,
            "total_chunks": 1, "chunks_size": 1000, "fps": FPS, "splits": {"train": f"0:{len(EPISODES)}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
            if cameras else None, "features": feats}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root


def _decode_png(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def read_v21_episode(root: Path, episode: int) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """The source as a v2.1 reader sees it: the episode's parquet rows and every decoded frame per camera
    (videos from the episode mp4s, an `image` feature from its PNG cells)."""
    table = pq.read_table(root / f"data/chunk-000/episode_{episode:06d}.parquet")
    frames = {}
    if IMAGE_KEY in table.column_names:
        cells = table.column(IMAGE_KEY).to_pylist()
        frames[IMAGE_KEY] = np.stack([_decode_png(c["bytes"]) for c in cells])
    for key in CAMERAS if (root / "videos").exists() else []:
        with av.open(str(root / f"videos/chunk-000/{key}/episode_{episode:06d}.mp4")) as c:
            frames[key] = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return table, frames
