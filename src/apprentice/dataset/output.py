"""Where an edit writes: a new root built beside its destination, verified, then renamed into place.

`--out DST`: DST must not exist (or be an empty directory); the build happens in `.DST.edit-<pid>` next
to it and is renamed to DST when complete. `--in-place`: the build happens beside the source and the
two directories are exchanged with one renameat2(RENAME_EXCHANGE) — readers see the old dataset or the
new one, never a mix — after which the old one is deleted. Killed at any point before the rename, an
edit leaves only a hidden `.NAME.edit-<pid>` directory, which the next edit of that destination removes.
Where renameat2 is missing, the swap is two renames; a crash between them leaves the original complete
at `.NAME.edit-old-<pid>` (never removed automatically: rename it back).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from apprentice.dataset.format import DatasetError, fsync_dir

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False where the kernel or libc lacks it."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"exchanging {a} and {b}: {os.strerror(err)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(dst: Path) -> None:
    """Delete what killed edits of `dst` left (their process is gone)."""
    for stale in dst.parent.glob(f".{dst.name}.edit-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if stale.name.startswith(f".{dst.name}.edit-old-"):
            continue  # an original the two-rename fallback was moving: never deleted here
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


class EditOutput:
    """Context manager yielding the directory to build in; commits on success, removes it on failure."""

    def __init__(self, out: str | Path | None, sources: Sequence[Path], in_place: bool) -> None:
        if in_place and out is not None:
            raise DatasetError("give either --out DST or --in-place, not both")
        if in_place:
            if len(sources) != 1:
                raise DatasetError("--in-place edits one dataset; use --out DST")
            self.dst, self.replace = Path(sources[0]), True
        elif out is None:
            raise DatasetError("say where to write: --out DST (a new directory), or --in-place to replace the source")
        else:
            self.dst, self.replace = Path(out), False
            if self.dst.exists() and (not self.dst.is_dir() or any(self.dst.iterdir())):
                raise DatasetError(f"--out {self.dst}: already exists and is not empty; pick a new directory "
                                   "(or edit the source with --in-place)")
            resolved = self.dst.resolve()
            for src in sources:
                src = Path(src).resolve()
                if resolved == src or src in resolved.parents:
                    raise DatasetError(f"--out {self.dst}: is inside the source {src}; write somewhere else")
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dst.parent / f".{self.dst.name}.edit-{os.getpid()}"

    def __enter__(self) -> Path:
        _remove_stale(self.dst)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            self._commit()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _commit(self) -> None:
        from apprentice.dataset.verify import verify

        built = [self.tmp] if (self.tmp / "meta").is_dir() else sorted(p for p in self.tmp.iterdir() if p.is_dir())
        for root in built:  # a split writes several roots under one directory
            verify(root)
        if not self.replace:
            if self.dst.exists():
                self.dst.rmdir()  # checked empty in __init__
            os.rename(self.tmp, self.dst)
        elif _exchange(self.tmp, self.dst):
            pass  # self.tmp now holds the original
        else:
            old = self.dst.parent / f".{self.dst.name}.edit-old-{os.getpid()}"
            os.rename(self.dst, old)  # a crash between these two renames leaves the original at `old`
            os.rename(self.tmp, self.dst)
            os.rename(old, self.tmp)
        fsync_dir(self.dst.parent)
        shutil.rmtree(self.tmp, ignore_errors=True)
