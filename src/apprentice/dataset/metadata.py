"""meta/: info.json, stats.json, tasks.parquet and the episodes parquet files, read through a Store.

A Store hides where the files are (a local root or a Hub repo read through huggingface_hub's file
system), so the local reader, the streaming reader, verify and repair share one loader.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from apprentice.dataset.format import (
    CODEBASE_VERSION,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    DatasetError,
    load_info,
    next_chunk_file,
    read_parquet,
    validate_features,
    version_error,
    video_keys,
    write_parquet_atomic,
)
from apprentice.dataset.stats import Stats, stats_from_json

log = logging.getLogger(__name__)


class Store(Protocol):
    def exists(self, rel: str) -> bool: ...
    def open(self, rel: str) -> IO[bytes]: ...
    def describe(self, rel: str) -> str: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def open(self, rel: str) -> IO[bytes]:
        return open(self.root / rel, "rb")

    def describe(self, rel: str) -> str:
        return str(self.root / rel)


def read_store_parquet(store: Store, rel: str) -> pa.Table:
    if isinstance(store, LocalStore):
        return read_parquet(store.root / rel)
    where = store.describe(rel)
    if not store.exists(rel):
        raise DatasetError(f"{where}: missing file")
    try:
        with store.open(rel) as f:
            return pq.read_table(io.BytesIO(f.read()))
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{where}: unreadable parquet ({str(e).splitlines()[0]})") from None


def read_tasks(store: Store) -> list[str]:
    """Task strings ordered by task_index. lerobot writes tasks.parquet with pandas, indexed by the task
    string (stored as column `__index_level_0__`); we read the index name from the pandas metadata."""
    table = read_store_parquet(store, TASKS_PATH)
    pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index_columns = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
    task_column = next((c for c in [*index_columns, "task", "__index_level_0__"] if c in table.column_names), None)
    if task_column is None or "task_index" not in table.column_names:
        raise DatasetError(f"{store.describe(TASKS_PATH)}: expected a task-string index and a task_index column, "
                           f"found columns {table.column_names}")
    pairs = sorted(zip(table.column("task_index").to_pylist(), table.column(task_column).to_pylist()))
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetError(f"{store.describe(TASKS_PATH)}: task_index values are not 0..{len(pairs) - 1}")
    return [str(t) for _, t in pairs]


def write_tasks(root: Path, tasks: list[str]) -> None:
    """tasks.parquet exactly as pandas writes a DataFrame indexed by task (what lerobot reads back)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
    }
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    table = pa.table({"task_index": list(range(len(tasks))), "__index_level_0__": tasks}, schema=schema)
    write_parquet_atomic(root / TASKS_PATH, [table])


def read_episodes(store: Store, chunks_size: int = 1000) -> list[dict[str, Any]]:
    """All episode rows, following meta/episodes/chunk-*/file-* in order until the next file is absent
    (`chunks_size` files per chunk: info.json's, 1000 by default)."""
    rows: list[dict[str, Any]] = []
    chunk, file = 0, 0
    while store.exists(rel := EPISODES_PATH.format(chunk_index=chunk, file_index=file)):
        rows += read_store_parquet(store, rel).to_pylist()
        chunk, file = next_chunk_file(chunk, file, chunks_size)
    required = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index")
    for expected, row in enumerate(rows):
        missing = [c for c in required if c not in row]
        if missing:
            raise DatasetError(f"{store.describe('meta/episodes')}: episode rows lack column(s) {missing}; "
                               "the episode metadata is not LeRobot v3.0")
        if row.get("episode_index") != expected:
            raise DatasetError(f"{store.describe('meta/episodes')}: episode rows are not 0..N-1 in order "
                               f"(row {expected} has episode_index {row.get('episode_index')})")
    return rows


class DatasetMeta:
    """Everything under meta/: `info`, `stats`, `tasks` (by task_index), `episodes` (one dict each)."""

    def __init__(self, store: Store, info: dict[str, Any], stats: dict[str, Stats], tasks: list[str],
                 episodes: list[dict[str, Any]]) -> None:
        self.store = store
        self.info = info
        self.stats = stats
        self.tasks = tasks
        self.episodes = episodes

    @classmethod
    def load(cls, store: Store) -> DatasetMeta:
        if isinstance(store, LocalStore):
            info = load_info(store.root)
        else:
            with store.open(INFO_PATH) as f:
                info = json.loads(f.read())
            if info.get("codebase_version") != CODEBASE_VERSION:
                raise version_error(store.describe(INFO_PATH), info.get("codebase_version"), store.describe(""))
            validate_features(info["features"], where=store.describe(INFO_PATH))
        stats: dict[str, Stats] = {}
        if store.exists(STATS_PATH):
            with store.open(STATS_PATH) as f:
                try:
                    stats = stats_from_json(json.loads(f.read()))
                except (json.JSONDecodeError, ValueError) as e:
                    raise DatasetError(f"{store.describe(STATS_PATH)}: unreadable ({e})") from None
        tasks = read_tasks(store)
        episodes = read_episodes(store, int(info.get("chunks_size", 1000)))
        for key in video_keys(info["features"]):
            columns = [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
            missing = [c for c in columns if episodes and c not in episodes[0]]
            if missing:
                raise DatasetError(f"{store.describe('meta/episodes')}: video feature {key!r} has no {missing} "
                                   "columns; the episode metadata does not match meta/info.json")
        if len(episodes) < info["total_episodes"]:
            raise DatasetError(f"{store.describe('meta/episodes')}: holds {len(episodes)} episode rows but "
                               f"meta/info.json says {info['total_episodes']}; episode metadata is missing — "
                               "restore meta/episodes/ from a copy (repair would drop those episodes)")
        if len(episodes) > info["total_episodes"]:
            # A writer killed right after committing an episode has not rewritten info.json yet; the
            # episode rows are the truth (verify reports the lag, repair rewrites info.json).
            log.warning("%s: total_episodes is %s but meta/episodes holds %d rows; run `apprentice dataset "
                        "repair`", store.describe(INFO_PATH), info["total_episodes"], len(episodes))
        return cls(store, info, stats, tasks, episodes)

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, Any]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return video_keys(self.features)

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] in ("video", "image")]

    @property
    def total_episodes(self) -> int:
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        return sum(int(ep["length"]) for ep in self.episodes)

    def data_rel(self, chunk_index: int, file_index: int) -> str:
        return self.info["data_path"].format(chunk_index=chunk_index, file_index=file_index)

    def video_rel(self, key: str, chunk_index: int, file_index: int) -> str:
        return self.info["video_path"].format(video_key=key, chunk_index=chunk_index, file_index=file_index)

    def episode_data_rel(self, ep: dict[str, Any]) -> str:
        return self.data_rel(ep["data/chunk_index"], ep["data/file_index"])

    def episode_video_rel(self, ep: dict[str, Any], key: str) -> str:
        return self.video_rel(key, ep[f"videos/{key}/chunk_index"], ep[f"videos/{key}/file_index"])
