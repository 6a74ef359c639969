"""Where a pair dataset lives: a local folder (a plain path or file://) or an object store
(any other fsspec URL: s3://bucket/prefix, gs://...). Commands open datasets here and get one
of two implementations of the same reading and writing interface:

- PairDataset (dataset.py): a folder with append-only manifests, a commit journal and a flock;
- ObjectDataset (objectstore.py): whole-object segments and a lease, for stores without append.

Both commit a unit whole or not at all, exactly once, and refuse a second writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from safetypairs.contract.errors import InvalidInput
from safetypairs.pairs.dataset import Dataset, PairDataset
from safetypairs.pairs.files import FolderLock
from safetypairs.pairs.lease import DEFAULT_LEASE_S, Lease
from safetypairs.pairs.objectstore import ObjectDataset, take_lease
from safetypairs.pairs.store_io import StoreIO


def local_path(location: str | Path) -> Path | None:
    """The folder of a local location (a path or file:// URL); None for an object store."""
    if isinstance(location, Path):
        return location
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if "://" in location:
        return None
    return Path(location)


def read_dataset(location: str | Path) -> Dataset:
    """An existing dataset, for reading only (no lock; beside a running writer)."""
    folder = local_path(location)
    if folder is not None:
        return PairDataset.read(folder)
    return ObjectDataset.read(str(location))


def take_writer(location: str | Path, lease_s: float = DEFAULT_LEASE_S) -> FolderLock | Lease:
    """The writer lock of a folder, or the lease of a dataset in an object store: taken
    before any work, so a second writer is refused before it calls a service."""
    folder = local_path(location)
    if folder is not None:
        return FolderLock(folder)
    return take_lease(str(location), lease_s)


def open_dataset(
    location: str | Path,
    header: dict[str, Any] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    writer: FolderLock | Lease | None = None,
) -> Dataset:
    """Open (creating when new) a dataset to write, holding its writer lock or lease (taken
    here, or `writer` from take_writer) until `close`; `lease_s`: an object store lease's
    duration (see lease.py)."""
    folder = local_path(location)
    if folder is not None:
        assert writer is None or isinstance(writer, FolderLock)
        return PairDataset.open(folder, header, writer)
    assert writer is None or isinstance(writer, Lease)
    return ObjectDataset.open(str(location), header, lease_s, writer)


def dataset_exists(url: str) -> bool:
    """Whether an object store location holds a dataset (its dataset.json)."""
    return StoreIO(url).exists("dataset.json")


def upload(local: Path, url: str) -> None:
    """Copy a local file or folder (an export) to `url`, refusing to replace one there. A
    file goes as one whole object; a folder file by file (readers should wait for the
    command to end)."""
    store = StoreIO(url)
    with store.errors():
        if store.fs.exists(store.root):
            raise InvalidInput(f"{url} exists: export to a new path")
        store.fs.put(str(local), store.root, recursive=local.is_dir())
