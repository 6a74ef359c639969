"""File operations of the pair dataset that must hold up against a full disk, a second writer
and a folder someone tampered with.

- Every OS error becomes a typed error naming the path (DiskFull for no space, a file-size
  limit or a quota; StorageError otherwise), so the command line prints one line, not a
  traceback.
- Readers open dataset files without following symbolic links, in any component below the
  dataset folder, and only regular files (a FIFO would block a reader forever).
- One writer per folder: an exclusive `flock` on DATASET/.lock, held while the writer runs and
  released by the kernel when the process ends however it ends, so a stale lock never blocks.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from safetypairs.contract.errors import (
    DiskFull,
    FolderInUse,
    SafetyPairsError,
    StorageError,
    TamperedFile,
)

LOCK_NAME = ".lock"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def storage_error(exc: OSError, path: Path | str) -> SafetyPairsError:
    """The typed error for an OS error on `path`."""
    reason = exc.strerror or str(exc)
    if exc.errno in _NO_SPACE:
        return DiskFull(f"cannot write {path}: {reason}")
    return StorageError(f"{path}: {reason}")


@contextmanager
def os_errors(path: Path | str) -> Iterator[None]:
    """Raise the typed error of any OS error in the block, naming `path`."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, path) from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a temporary file beside it, fsynced and renamed; the
    temporary file is removed on any failure."""
    with os_errors(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_nofollow(root: Path, rel: str, limit: int | None = None) -> bytes:
    """The bytes of `root/rel` (at most `limit`), refusing a symbolic link in any component of
    `rel` and anything but a regular file (TamperedFile). FileNotFoundError passes through."""
    parts = rel.split("/")
    path = root / rel
    fds: list[int] = []
    try:
        with os_errors(root):
            fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_NONBLOCK if last else os.O_DIRECTORY
            try:
                fds.append(os.open(part, flags, dir_fd=fds[-1]))
            except FileNotFoundError:
                raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise TamperedFile(
                        f"{root / '/'.join(parts[: i + 1])} is a symbolic link or not a "
                        "directory: dataset files are read only as regular files"
                    ) from None
                raise storage_error(exc, path) from None
        with os_errors(path):
            if not stat.S_ISREG(os.fstat(fds[-1]).st_mode):
                raise TamperedFile(f"{path} is not a regular file")
            with os.fdopen(os.dup(fds[-1]), "rb") as f:
                return f.read() if limit is None else f.read(limit)
    finally:
        for fd in fds:
            os.close(fd)


class FolderLock:
    """The writer lock of a dataset folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        path = root / LOCK_NAME
        with os_errors(path):
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        # A file object: should its owner be dropped without release(), collecting it closes
        # the descriptor and so frees the lock.
        self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise FolderInUse(
                f"{root} is being written by another process (pid {holder}); one writer per "
                "folder: wait for it to finish or write to another folder"
            ) from None
        except OSError as exc:
            self.release()
            raise storage_error(exc, path) from None
        with os_errors(path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        with suppress(OSError):
            self._file.close()  # closing the descriptor releases the flock
