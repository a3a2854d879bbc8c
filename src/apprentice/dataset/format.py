"""LeRobotDataset v3.0 on-disk format: paths, info.json, feature schema, atomic file writes.

Everything here was read off files real lerobot 0.4.4 wrote (shared/specs/lerobot-v3.md); the writer,
reader, verifier and repair all go through these helpers so no one spells a path by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class DatasetError(Exception):
    """Any problem with a dataset on disk or with how it is used; the message names the file and the fix."""


CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
# Scratch space of a writer (episode videos being encoded); never part of the dataset, never pushed.
STAGING_DIR = ".staging"

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
TIMESTAMP_TOLERANCE_S = 1e-4  # lerobot's tolerance for timestamp == frame_index / fps
NUMERIC_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64"}
VISUAL_DTYPES = {"image", "video"}


def validate_features(features: Mapping[str, Mapping[str, Any]], where: str = "features") -> None:
    """Raise DatasetError on a feature this format cannot store (unknown dtype, bad shape, reserved name)."""
    if not isinstance(features, Mapping) or not all(isinstance(ft, Mapping) for ft in features.values()):
        raise DatasetError(f"{where}: 'features' must map each feature name to an object with dtype and shape")
    for key, ft in features.items():
        dtype = ft.get("dtype")
        shape = ft.get("shape")
        if dtype not in NUMERIC_DTYPES | VISUAL_DTYPES | {"string"}:
            raise DatasetError(f"{where}: feature {key!r} has dtype {dtype!r}; use one of float32, int64, "
                               "bool, string, image, video")
        if not isinstance(shape, list | tuple) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise DatasetError(f"{where}: feature {key!r} needs a shape list of positive ints, got {shape!r}")
        if dtype in VISUAL_DTYPES and (len(shape) != 3 or shape[2] != 3):
            raise DatasetError(f"{where}: {dtype} feature {key!r} must have shape [height, width, 3], "
                               f"got {list(shape)}")
        if dtype in NUMERIC_DTYPES and len(shape) != 1:
            raise DatasetError(f"{where}: numeric feature {key!r} must be 1-D (shape [n]), got {list(shape)}")
        if "/" in key:
            raise DatasetError(f"{where}: feature name {key!r} may not contain '/' (episodes columns use it)")


def video_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] == "video"]


def video_feature_info(shape: list[int], codec: str, fps: int) -> dict[str, Any]:
    """The `info` block of a video feature in info.json, as lerobot writes it (codec: "av1" or "h264")."""
    height, width, channels = shape
    return {"video.height": height, "video.width": width, "video.codec": codec, "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False, "video.fps": fps, "video.channels": channels, "has_audio": False}


def chunk_file(index: int, chunks_size: int) -> tuple[int, int]:
    """Global file number -> (chunk_index, file_index), lerobot's rule: a chunk holds chunks_size files."""
    return index // chunks_size, index % chunks_size


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    file_index += 1
    if file_index >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index


# ---------------------------------------------------------------- atomic writes
def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(tmp: Path, final: Path) -> None:
    """Make `final` the fully written `tmp`: readers see the old file or the new one, never a torn one."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


def tmp_path(final: Path) -> Path:
    # The tmp name keeps the real suffix last so PyAV/pyarrow pick the right format from it.
    return final.with_name(f".tmp-{os.getpid()}-{final.name}")


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    tmp.write_text(json.dumps(obj, indent=4, ensure_ascii=False) + "\n")
    replace_atomically(tmp, path)


def write_parquet_atomic(path: Path, tables: list[pa.Table]) -> None:
    """Write `tables` as one parquet file, one row group each (lerobot: one row group per episode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    with pq.ParquetWriter(tmp, tables[0].schema, compression="snappy") as writer:
        for table in tables:
            writer.write_table(table.cast(tables[0].schema), row_group_size=max(1, table.num_rows))
    replace_atomically(tmp, path)


# ---------------------------------------------------------------- reading with one-line errors
def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; is this a LeRobot v3.0 dataset root?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e}); restore the file from a copy") from None


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file, turning pyarrow's deep errors into one line that names the file."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing file; run `apprentice dataset verify` to list what is referenced")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{path}: unreadable parquet ({first}); the file is truncated or corrupt — "
                           "re-download it or run `apprentice dataset repair`") from None


def version_error(where: str, version: Any, source: str) -> DatasetError:
    """The error for a dataset of another codebase version, saying how to get a v3.0 one from it."""
    if version == "v2.1":
        fix = (f"it is LeRobot v2.1 (one file per episode); convert it with `apprentice dataset convert-v21 "
               f"{source} --out NEW_ROOT` (`--repo-id` for a Hub dataset) and load NEW_ROOT")
    elif isinstance(version, str) and version.startswith(("v1.", "v2.0")):
        fix = ("convert it to v2.1 first with lerobot 0.3's convert_dataset_v20_to_v21, then `apprentice dataset "
               "convert-v21`")
    else:
        fix = "is it a LeRobot dataset? Write it again with DatasetWriter, or update apprentice for newer versions"
    return DatasetError(f"{where}: codebase_version is {version!r}, this reader needs {CODEBASE_VERSION!r}; {fix}")


def load_info(root: Path) -> dict[str, Any]:
    """info.json, checked: version, required keys and valid features."""
    path = root / INFO_PATH
    info = read_json(path)
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise version_error(str(path), version, str(root))
    for key in ("fps", "features", "total_episodes", "total_frames", "data_path"):
        if key not in info:
            raise DatasetError(f"{path}: missing key {key!r}")
    validate_features(info["features"], where=str(path))
    return info


def make_info(features: Mapping[str, Any], fps: int, robot_type: str | None, *, chunks_size: int,
              data_files_size_in_mb: float, video_files_size_in_mb: float) -> dict[str, Any]:
    has_video = any(ft["dtype"] == "video" for ft in features.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": data_files_size_in_mb,
        "video_files_size_in_mb": video_files_size_in_mb,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": {**features, **{k: dict(v) for k, v in DEFAULT_FEATURES.items()}},  # copies: callers add fields
    }


# ---------------------------------------------------------------- data parquet schema
def _value_type(dtype: str) -> pa.DataType:
    return pa.string() if dtype == "string" else pa.from_numpy_dtype(dtype)


def arrow_schema(features: Mapping[str, Mapping[str, Any]]) -> pa.Schema:
    """Data-file schema as lerobot writes it: shape [1] -> scalar, [n] -> fixed_size_list<n>, image -> struct."""
    fields = []
    hf: dict[str, Any] = {}
    for key, ft in features.items():
        dtype = ft["dtype"]
        if dtype == "video":
            continue
        if dtype == "image":
            fields.append(pa.field(key, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
            hf[key] = {"_type": "Image"}
        elif list(ft["shape"]) == [1]:
            fields.append(pa.field(key, _value_type(dtype)))
            hf[key] = {"dtype": dtype, "_type": "Value"}
        else:
            fields.append(pa.field(key, pa.list_(_value_type(dtype), ft["shape"][0])))
            hf[key] = {"feature": {"dtype": dtype, "_type": "Value"}, "length": ft["shape"][0], "_type": "List"}
    # HF `datasets` reads its features from this metadata key when lerobot loads the parquet files.
    metadata = {b"huggingface": json.dumps({"info": {"features": hf}}).encode()}
    return pa.schema(fields, metadata=metadata)


def check_data_schema(path: Path, schema: pa.Schema, features: Mapping[str, Mapping[str, Any]]) -> None:
    """Name the first column of a data file that disagrees with info.json."""
    expected = arrow_schema(features)
    for field in expected:
        if field.name not in schema.names:
            raise DatasetError(f"{path}: column {field.name!r} declared in meta/info.json is missing")
        got = schema.field(field.name).type
        if not _compatible(got, field.type):
            ft = features[field.name]
            raise DatasetError(f"{path}: column {field.name!r} holds {_describe(got)} but meta/info.json declares "
                               f"dtype {ft['dtype']} shape {ft['shape']}; fix info.json or rewrite the data")


def _describe(t: pa.DataType) -> str:
    if pa.types.is_fixed_size_list(t):
        return f"{t.value_type} vectors of length {t.list_size}"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"variable-length {t.value_type} lists"
    return str(t)


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    if got == want:
        return True
    if pa.types.is_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    if pa.types.is_fixed_size_list(want):
        # Some writers store vectors as variable-size lists; the length is then checked on read.
        return (pa.types.is_list(got) or pa.types.is_large_list(got)) and got.value_type == want.value_type
    return False
