"""The pair dataset on disk: content-addressed images, append-only JSONL manifests, and a
commit journal that says how much of the manifests is committed.

    DATASET/
      dataset.json      what made it: format version, policy, generation settings, services
      pairs.jsonl       one record per ACCEPTED pair (also the training format: id, a, b)
      rejected.jsonl    one record per rejected candidate, with its reasons
      failed.jsonl      one record per work unit that failed (unreadable image, service down)
      commits.jsonl     one line per committed unit: the manifests' sizes after it
      images/<sha256>.png   every image, named by the SHA-256 of its bytes
      .lock             the writer lock (see files.py): one writer per folder

A unit's records may go to two manifests (rejected candidates, then the accepted pair). They
are appended and fsynced first; then ONE line is appended to commits.jsonl and fsynced: that
append is the unit's commit. Opening the dataset to write truncates every manifest back to the
sizes of the last complete journal line, so a run killed at any point (between the two
manifest writes, or mid-line) loses the unit in flight whole and the resume writes it once.
Readers read each manifest only up to its committed size, so a report or an export beside a
running generator sees whole units only. Images are written to a temporary file and renamed.

A dataset without commits.jsonl (written before the journal, e.g. tests/data/pairs_v1) reads
as before: every complete line of every manifest is committed. A writer that opens one
drops a partial last line and writes the journal's first line with the sizes it found.
Manifests keep their format, so readers of pairs.jsonl alone still work.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput, TamperedFile
from safetypairs.contract.jsonl import BadData, parse_jsonl
from safetypairs.contract.pair_record import (
    ACCEPTED,
    FAILED,
    REJECTED,
    FailedUnit,
    PairRecord,
    Record,
    from_json,
    to_line,
)
from safetypairs.contract.review_record import ReviewRecord, read_reviews
from safetypairs.pairs.files import FolderLock, os_errors, read_nofollow, write_atomic

FORMAT = "safetypairs-pairs"
FORMAT_VERSION = 1
MANIFESTS = ("pairs.jsonl", "rejected.jsonl", "failed.jsonl")
JOURNAL = "commits.jsonl"
_EDITED = (
    f": changed by hand? To accept the manifests as they are, delete {JOURNAL} (the dataset "
    "then reads whole, as one from before the journal)"
)
_FILE_OF = {ACCEPTED: "pairs.jsonl", REJECTED: "rejected.jsonl", FAILED: "failed.jsonl"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_IMAGE_PATH = re.compile(r"images/([0-9a-f]{64})\.[a-z0-9]{1,5}")


def is_image_path(rel: object) -> bool:
    """Whether a manifest's image reference has the shape `put_image` writes. Readers (report,
    export) follow only such paths: a record could name "../secret" or "javascript:..."."""
    return isinstance(rel, str) and _IMAGE_PATH.fullmatch(rel) is not None


def check_run(where: str, existing: dict[str, Any], header: dict[str, Any] | None) -> None:
    """Refuse to write into a dataset made with other run settings than `header`'s: resuming
    with other arguments would mix two runs."""
    if header is None or existing.get("run") == header.get("run"):
        return
    changed = _differences(existing.get("run", {}), header.get("run", {}))
    raise InvalidInput(
        f"{where} was generated with other settings ({'; '.join(changed)}); resume with the "
        "same arguments or write to a new folder"
    )


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """'criteria.margin: 0.1 in the dataset, 0.0 now' for each setting that differs."""
    lines = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            lines += _differences(was, now, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}: {json.dumps(was)} in the dataset, {json.dumps(now)} now")
    return lines


def parse_header(data: bytes | None, where: str) -> dict[str, Any]:
    """dataset.json's content, checked to be a pair dataset's (None: there is none)."""
    try:
        header = json.loads(data) if data is not None else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidInput(f"{where} is not a pair dataset (dataset.json format)")
    return header


def file_of(record: Record) -> str:
    """The manifest a record is filed under, by its status."""
    if record.status not in _FILE_OF:
        raise InvalidInput(f"record {record.unit!r} has no status to file it under")
    return _FILE_OF[record.status]


class Dataset:
    """A pair dataset wherever it lives (pairs/store.py picks the implementation). What every
    location reads the same way is here: records by status, the done units, and images
    checked against the hash in their names. A location (a local folder, an object store
    prefix) supplies the methods that raise NotImplementedError here; the writing ones work
    on a dataset opened to write (`open`), the others on any."""

    @property
    def location(self) -> str:
        raise NotImplementedError

    @property
    def header(self) -> dict[str, Any]:
        raise NotImplementedError

    def records(self, status: str | None = None) -> Iterator[Record]:
        raise NotImplementedError

    def _read(self, rel: str, limit: int | None = None) -> bytes:
        raise NotImplementedError

    def where(self, rel: str) -> str:
        """`rel` inside the dataset, as messages name it."""
        raise NotImplementedError

    def image_names(self) -> list[str]:
        """Every stored image, as images/<sha256>.<ext> paths, sorted."""
        raise NotImplementedError

    def reviews(self) -> list[ReviewRecord]:
        """The review log's committed decisions (none where the location keeps no log)."""
        return []

    def put_image(self, data: bytes, suffix: str = ".png") -> str:
        """Store image bytes under their content hash; the path relative to the root."""
        raise NotImplementedError

    def has_image(self, rel: str) -> bool:
        raise NotImplementedError

    def put_file(self, name: str, data: bytes) -> str:
        """Write a whole file beside the dataset's own (the report), replacing one of that
        name, never seen half-written; where it is."""
        raise NotImplementedError

    def commit(self, records: Sequence[Record]) -> None:
        """Commit a work unit's records whole or not at all."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the writer lock or lease (a reader holds none)."""

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_image(self, rel: str) -> bytes:
        """An image's bytes, checked against the SHA-256 its name carries (TamperedFile when
        they differ). `rel` must be an image path."""
        match = _IMAGE_PATH.fullmatch(rel)
        if match is None:
            raise InvalidInput(f"{rel!r} is not an images/<sha256>.<ext> path")
        data = self._read(rel)
        if sha256(data) != match.group(1):
            raise TamperedFile(
                f"{self.where(rel)}: its bytes do not match the SHA-256 in its name "
                f"(they hash to {sha256(data)[:16]}...)"
            )
        return data

    def pairs(self, *statuses: str) -> Iterator[PairRecord]:
        """The candidate records (accepted, rejected, or those given), in commit order."""
        for status in statuses or (ACCEPTED, REJECTED):
            for record in self.records(status):
                if isinstance(record, PairRecord):
                    yield record

    def failures(self) -> Iterator[FailedUnit]:
        for record in self.records(FAILED):
            if isinstance(record, FailedUnit):
                yield record

    def done_units(self) -> set[str]:
        """Work units with a committed outcome (accepted, or rejected on every attempt). A
        failed unit is not done: a later run tries it again."""
        return {
            r.unit
            for r in self.pairs()
            if r.unit and (r.status == ACCEPTED or (r.status == REJECTED and r.final))
        }


@dataclass
class PairDataset(Dataset):
    root: Path

    # Committed bytes per manifest (None: a dataset from before the journal, read whole).
    sizes: dict[str, int] | None = None
    _lock: FolderLock | None = field(default=None, repr=False)
    _journal_size: int = 0

    @classmethod
    def open(
        cls, root: str | Path, header: dict[str, Any] | None = None, lock: FolderLock | None = None
    ) -> PairDataset:
        """Open (creating when new) a dataset to write, holding its writer lock (`lock`, when
        the caller took it already) until `close`. With `header`, an existing dataset must
        have been made with the same settings: resuming with other arguments would mix two
        runs. Uncommitted manifest bytes a killed writer left are dropped."""
        root = Path(root)
        lock = lock or FolderLock(root)
        try:
            with os_errors(root / "images"):
                (root / "images").mkdir(parents=True, exist_ok=True)
            ds = cls(root, _lock=lock)
            ds._check_header(header)
            ds._recover()
        except BaseException:
            lock.release()
            raise
        return ds

    def _check_header(self, header: dict[str, Any] | None) -> None:
        meta = self.root / "dataset.json"
        if meta.exists():
            check_run(str(self.root), self.header, header)
        elif header is not None:
            data = {"format": FORMAT, "format_version": FORMAT_VERSION, **header}
            write_atomic(meta, json.dumps(data, indent=2).encode() + b"\n")

    def _recover(self) -> None:
        """Truncate the journal and the manifests to the last commit; start the journal of a
        dataset that has none with what its manifests hold."""
        journal = self.root / JOURNAL
        self.sizes = self._committed()
        self._journal_size = self._journal_end()
        self._truncate(journal, self._journal_size)
        if self.sizes is None:
            self.sizes = {name: self._drop_partial_line(name) for name in MANIFESTS}
            self._append_commit([])
            return
        for name, size in self.sizes.items():
            self._truncate(self.root / name, size)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @classmethod
    def read(cls, root: str | Path) -> PairDataset:
        """An existing dataset, for reading only: nothing is created or repaired and no lock
        is taken, so a report or an export can run beside a generator that is still writing
        it; it sees the units committed when it was opened."""
        root = Path(root)
        ds = cls(root)
        if not (root / "dataset.json").is_file() and not (root / "dataset.json").is_symlink():
            raise InvalidInput(f"{root} is not a pair dataset (no dataset.json)")
        ds.header  # noqa: B018 - checks the format
        ds.sizes = ds._committed()
        return ds

    @property
    def location(self) -> str:
        return str(self.root)

    @property
    def header(self) -> dict[str, Any]:
        try:
            data: bytes | None = self._read("dataset.json")
        except FileNotFoundError:
            data = None
        return parse_header(data, str(self.root))

    def where(self, rel: str) -> str:
        return str(self.root / rel)

    def image_names(self) -> list[str]:
        folder = self.root / "images"
        with os_errors(folder):
            names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return [f"images/{n}" for n in names if is_image_path(f"images/{n}")]

    def reviews(self) -> list[ReviewRecord]:
        return read_reviews(self.root)

    def _read(self, rel: str, limit: int | None = None) -> bytes:
        return read_nofollow(self.root, rel, limit)

    # -- the journal ---------------------------------------------------------------------

    def _journal_lines(self) -> list[bytes]:
        """The complete lines of the journal (a partial last one is a commit not made)."""
        try:
            data = self._read(JOURNAL)
        except FileNotFoundError:
            return []
        return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)

    def _journal_end(self) -> int:
        return sum(len(line) for line in self._journal_lines())

    def _committed(self) -> dict[str, int] | None:
        """The manifests' sizes at the last commit; None for a dataset without a journal."""
        lines = self._journal_lines()
        if not lines:
            return None
        where = f"{self.root / JOURNAL} line {len(lines)}"
        try:
            sizes = json.loads(lines[-1])["sizes"]
        except (ValueError, KeyError, TypeError):
            raise BadData(f"{where}: not a commit line") from None
        if not isinstance(sizes, dict) or not all(
            isinstance(sizes.get(name), int) and sizes[name] >= 0 for name in MANIFESTS
        ):
            raise BadData(f"{where}: 'sizes' must give a byte count for {', '.join(MANIFESTS)}")
        return {name: sizes[name] for name in MANIFESTS}

    def _append_commit(self, records: Sequence[Record]) -> None:
        assert self.sizes is not None
        units = sorted({r.unit for r in records if r.unit})
        line = (json.dumps({"units": units, "sizes": self.sizes}, sort_keys=True) + "\n").encode()
        self._append(self.root / JOURNAL, line)
        self._journal_size += len(line)

    @staticmethod
    def _append(path: Path, data: bytes) -> None:
        with os_errors(path), open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _truncate(path: Path, size: int) -> None:
        """Cut `path` to `size` bytes (a no-op when it is that long already)."""
        with os_errors(path):
            actual = path.stat().st_size if path.exists() else 0
            if actual < size:
                raise BadData(f"{path} has {actual} bytes but {size} were committed{_EDITED}")
            if actual > size:
                with open(path, "r+b") as f:
                    f.truncate(size)
                    f.flush()
                    os.fsync(f.fileno())

    def _drop_partial_line(self, name: str) -> int:
        """Cut a trailing partial line (a write a process did not finish); the size left."""
        path = self.root / name
        with os_errors(path):
            data = path.read_bytes() if path.exists() else b""
        size = data.rfind(b"\n") + 1
        self._truncate(path, size)
        return size

    # -- writing -------------------------------------------------------------------------

    def put_image(self, data: bytes, suffix: str = ".png") -> str:
        rel = f"images/{sha256(data)}{suffix}"
        path = self.root / rel
        if not path.exists():
            write_atomic(path, data)
        return rel

    def has_image(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def put_file(self, name: str, data: bytes) -> str:
        path = self.root / name
        tmp = path.with_name(f".tmp-{name}")
        try:
            with os_errors(tmp):
                tmp.write_bytes(data)
            with os_errors(path):
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return str(path)

    def commit(self, records: Sequence[Record]) -> None:
        """Commit a work unit's records whole or not at all: append them to their manifests
        (by status), then the one journal line that commits them. On a failure (a full disk)
        everything this call appended is cut off again before the error is raised."""
        if self._lock is None or self.sizes is None:
            raise InvalidInput(f"{self.root} is open for reading only")
        by_file: dict[str, list[Record]] = {}
        for r in records:
            by_file.setdefault(file_of(r), []).append(r)
        before, journal_size = dict(self.sizes), self._journal_size
        try:
            for name, rows in by_file.items():
                data = "".join(to_line(r) + "\n" for r in rows).encode()
                self._append(self.root / name, data)
                self.sizes[name] += len(data)
            self._append_commit(records)
        except BaseException:
            self.sizes, self._journal_size = before, journal_size
            with suppress(OSError, BadData):
                self._truncate(self.root / JOURNAL, journal_size)
                for name, size in before.items():
                    self._truncate(self.root / name, size)
            raise

    # -- reading -------------------------------------------------------------------------

    def manifest_text(self, name: str) -> str:
        """A manifest's committed text ("" when it does not exist)."""
        limit = None if self.sizes is None else self.sizes[name]
        try:
            data = self._read(name, limit)
        except FileNotFoundError:
            data = b""
        if limit is not None and len(data) < limit:
            raise BadData(
                f"{self.root / name} has {len(data)} bytes but {limit} were committed{_EDITED}"
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadData(f"{self.root / name}: cannot be read as UTF-8 text ({exc})") from None

    def records(self, status: str | None = None) -> Iterator[Record]:
        """Every committed record (of one status, when given), in commit order per manifest;
        a bad line raises BadData naming the file and line."""
        names = [_FILE_OF[status]] if status else list(MANIFESTS)
        for name in names:
            for where, data in parse_jsonl(self.manifest_text(name), str(self.root / name)):
                yield from_json(data, where)
