"""Hugging Face Hub: push (tagged with the codebase version, as lerobot does), pull, and streaming.

The endpoint is read from HF_ENDPOINT at call time (huggingface_hub reads it once at import), so a
process can point at a mirror or a test server without re-importing. Network and Hub errors become
one-line DatasetErrors naming the repo and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from apprentice.dataset.format import CODEBASE_VERSION, INFO_PATH, STAGING_DIR, DatasetError, load_info, read_json
from apprentice.dataset.reader import LeRobotDataset

CARD = """---
license: {license}
task_categories:
- robotics
tags:
{tags}
configs:
- config_name: default
  data_files: data/*/*.parquet
---
This dataset was recorded with [Apprentice](https://github.com/apprentice-robotics/apprentice) in the
[LeRobot](https://github.com/huggingface/lerobot) v3.0 format.

- robot_type: {robot_type}
- episodes: {total_episodes}, frames: {total_frames}, fps: {fps}

```json
{info}
```
"""


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _hub_error(repo_id: str, action: str, error: Exception) -> DatasetError:
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DatasetError(f"hf://datasets/{repo_id}: {action} failed ({first}); check the repo id, your token "
                        "(`hf auth login` or HF_TOKEN) and HF_ENDPOINT")


def hf_home() -> Path:
    """$HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (huggingface_hub's rule)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home)))


def lerobot_home() -> Path:
    """Where pulled datasets live, as lerobot: $HF_LEROBOT_HOME, else $HF_HOME/lerobot."""
    if os.environ.get("LEROBOT_HOME"):  # lerobot refuses it too: a silently ignored variable loses data
        raise DatasetError(f"LEROBOT_HOME={os.environ['LEROBOT_HOME']} is deprecated (lerobot and Apprentice "
                           "read HF_LEROBOT_HOME); rename the variable")
    return Path(os.environ.get("HF_LEROBOT_HOME") or hf_home() / "lerobot").expanduser()


def hf_datasets_cache() -> Path:
    """$HF_DATASETS_CACHE, else $HF_HOME/datasets (the `datasets` library's cache; our frame caches live here)."""
    return Path(os.environ.get("HF_DATASETS_CACHE") or hf_home() / "datasets").expanduser()


def default_root(repo_id: str) -> Path:
    """Where a pulled dataset lives, as lerobot: $HF_LEROBOT_HOME/<repo_id> (see lerobot_home)."""
    return lerobot_home() / repo_id


def is_repo_id(text: str) -> bool:
    """`user/name` that is not a path on this machine (`./user/name` or `/abs` never is)."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).exists()


def dataset_card(info: dict[str, Any], tags: Sequence[str] = (), license: str = "apache-2.0") -> str:
    """The README.md lerobot's push_to_hub writes: YAML front matter (tags: LeRobot + `tags`), then a summary."""
    all_tags = ["LeRobot", *[t for t in tags if t != "LeRobot"]]
    return CARD.format(license=license, robot_type=info.get("robot_type"), fps=info["fps"],
                       total_episodes=info["total_episodes"], total_frames=info["total_frames"],
                       info=json.dumps(info, indent=2), tags="\n".join(f"- {json.dumps(t)}" for t in all_tags))


def write_card(root: str | Path, tags: Sequence[str] = (), license: str = "apache-2.0") -> Path:
    """Write (atomically) the dataset card into `root`; `push` uploads it as it is."""
    root = Path(root)
    path = root / "README.md"
    tmp = root / ".README.md.partial"
    tmp.write_text(dataset_card(load_info(root), tags, license))
    os.replace(tmp, path)
    return path


def push(root: str | Path, repo_id: str, *, private: bool = False, branch: str | None = None,
         license: str = "apache-2.0", token: str | None = None, tags: Sequence[str] = ()) -> str:
    """Upload `root` to a dataset repo in one commit, then (re)tag that revision "v3.0". Returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    root = Path(root)
    info = load_info(root)
    if (root / STAGING_DIR).exists() or any(root.rglob(".tmp-*")):
        raise DatasetError(f"{root}: a writer is running or crashed here; finish it or run "
                           "`apprentice dataset repair` before pushing")
    from apprentice.dataset.verify import verify

    verify(root)  # what is uploaded must load in lerobot: every invariant, before any request is made
    api = HfApi(endpoint=_endpoint(), token=token)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.relative_to(root).as_posix().startswith("."))
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(root).as_posix(), path_or_fileobj=str(p))
                  for p in files]
    if tags or not (root / "README.md").exists():  # tags given: a fresh card carries them (and current totals)
        card = dataset_card(info, tags, license)
        operations = [op for op in operations if op.path_in_repo != "README.md"]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch:
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        commit = api.create_commit(repo_id, operations, repo_type="dataset", revision=branch,
                                   commit_message=f"Upload LeRobotDataset {CODEBASE_VERSION} "
                                                  f"({info['total_episodes']} episodes)")
        # lerobot reads the revision tagged with the codebase version; move the tag to this commit.
        with contextlib.suppress(RevisionNotFoundError):
            api.delete_tag(repo_id, tag=CODEBASE_VERSION, repo_type="dataset")
        api.create_tag(repo_id, tag=CODEBASE_VERSION, revision=commit.oid, repo_type="dataset")
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise _hub_error(repo_id, "push", e) from None
    return str(commit.commit_url)


def pull(repo_id: str, *, root: str | Path | None = None, revision: str | None = None,
         token: str | None = None, codebase_version: str = CODEBASE_VERSION) -> Path:
    """Download a dataset repo at `revision` (default: the tag named `codebase_version`, "v3.0") into
    `root`; checks that what arrived is that version. Returns the root."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    target = Path(root) if root is not None else default_root(repo_id)
    try:
        snapshot_download(repo_id, repo_type="dataset", revision=revision or codebase_version, local_dir=target,
                          endpoint=_endpoint(), token=token)
    except RevisionNotFoundError:
        hint = ("if it is still v2.1, convert it: `apprentice dataset convert-v21 --repo-id "
                f"{repo_id} --out DIR`" if codebase_version == CODEBASE_VERSION else "pass --revision")
        raise DatasetError(f"hf://datasets/{repo_id}: no revision {revision or codebase_version!r}; the dataset is "
                           f"not tagged for LeRobot {codebase_version} ({hint})") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise _hub_error(repo_id, "pull", e) from None
    if codebase_version == CODEBASE_VERSION:
        load_info(target)
    else:
        found = read_json(target / INFO_PATH).get("codebase_version")
        if found != codebase_version:
            raise DatasetError(f"hf://datasets/{repo_id}@{revision or codebase_version}: meta/info.json says "
                               f"codebase_version {found!r}, expected {codebase_version!r}")
    return target


class HfStore:
    """Reads dataset files straight from a Hub repo through huggingface_hub's file system (HTTP ranges)."""

    def __init__(self, repo_id: str, revision: str = CODEBASE_VERSION, token: str | None = None) -> None:
        from huggingface_hub import HfFileSystem
        from huggingface_hub.errors import HfHubHTTPError

        self.repo_id, self.revision = repo_id, revision
        self.fs = HfFileSystem(endpoint=_endpoint(), token=token)
        self.prefix = f"datasets/{repo_id}@{revision}/"
        try:
            self._files = {p[len(self.prefix):] for p in self.fs.find(self.prefix)}
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise _hub_error(repo_id, f"listing revision {revision!r}", e) from None

    def exists(self, rel: str) -> bool:
        return rel in self._files

    def open(self, rel: str) -> IO[bytes]:
        if rel not in self._files:
            raise DatasetError(f"{self.describe(rel)}: missing file")
        return self.fs.open(self.prefix + rel, "rb")

    def describe(self, rel: str) -> str:
        return f"hf://{self.prefix}{rel}"


class StreamingLeRobotDataset(torch.utils.data.IterableDataset):
    """Iterate a Hub dataset without downloading it: metadata and the numeric columns of the selected
    episodes are fetched up front (small), video bytes are read by HTTP range as frames are decoded.
    Samples are identical to LeRobotDataset's for the same episodes and delta_timestamps."""

    def __init__(self, repo_id: str, episodes: Sequence[int] | None = None,
                 delta_timestamps: dict[str, list[float]] | None = None, *, revision: str = CODEBASE_VERSION,
                 shuffle: bool = False, seed: int = 0, token: str | None = None, **kwargs: Any) -> None:
        self.dataset = LeRobotDataset(repo_id, episodes, delta_timestamps,
                                      store=HfStore(repo_id, revision, token), **kwargs)
        self.meta = self.dataset.meta
        self.shuffle, self.seed = shuffle, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Episode order may be shuffled, frames within an episode stay in order: each video is then
        # read forward, which is what HTTP range reads are good at.
        order = list(self.dataset.episodes)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed)
            order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
        worker = torch.utils.data.get_worker_info()
        if worker is not None:
            order = order[worker.id :: worker.num_workers]
        for episode in order:
            start = self.dataset._row_start[episode]
            for row in range(start, start + self.meta.episodes[episode]["length"]):
                yield self.dataset[row]
