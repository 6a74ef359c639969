"""The pair dataset on disk: content-addressed images and append-only JSONL manifests.

    DATASET/
      dataset.json      what made it: format version, policy, generation settings, services
      pairs.jsonl       one record per ACCEPTED pair (also the training format: id, a, b)
      rejected.jsonl    one record per rejected candidate, with its reasons
      failed.jsonl      one record per work unit that failed (unreadable image, service down)
      images/<sha256>.png   every image, named by the SHA-256 of its bytes

Writes are atomic: an image is written to a temporary file and renamed; a unit's records are
appended in one write and fsynced. A run killed at any point leaves at most a partial last line,
which opening the dataset again truncates away (it was never committed), so no half-written
record survives. Records of one work unit are committed together, so a restarted run redoes only
the unit that was in flight, with the same seeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.jsonl import read_jsonl
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

FORMAT = "safetypairs-pairs"
FORMAT_VERSION = 1
MANIFESTS = ("pairs.jsonl", "rejected.jsonl", "failed.jsonl")
_FILE_OF = {ACCEPTED: "pairs.jsonl", REJECTED: "rejected.jsonl", FAILED: "failed.jsonl"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_IMAGE_PATH = re.compile(r"images/[0-9a-f]{64}\.[a-z0-9]{1,5}")


def is_image_path(rel: object) -> bool:
    """Whether a manifest's image reference has the shape `put_image` writes. Readers (report,
    export) follow only such paths: a record could name "../secret" or "javascript:..."."""
    return isinstance(rel, str) and _IMAGE_PATH.fullmatch(rel) is not None


@dataclass
class PairDataset:
    root: Path

    @classmethod
    def open(cls, root: str | Path, header: dict[str, Any] | None = None) -> PairDataset:
        """Open (creating when new) a dataset. With `header`, an existing dataset must have been
        made with the same settings: resuming with other arguments would mix two runs."""
        root = Path(root)
        (root / "images").mkdir(parents=True, exist_ok=True)
        ds = cls(root)
        meta = root / "dataset.json"
        if meta.exists():
            existing = json.loads(meta.read_text())
            if existing.get("format") != FORMAT:
                raise InvalidInput(f"{root} is not a pair dataset (dataset.json format)")
            if header is not None and existing.get("run") != header.get("run"):
                changed = sorted(
                    k
                    for k in set(existing.get("run", {})) | set(header.get("run", {}))
                    if existing.get("run", {}).get(k) != header.get("run", {}).get(k)
                )
                raise InvalidInput(
                    f"{root} was generated with other settings ({', '.join(changed)} differ); "
                    "resume with the same arguments or write to a new folder"
                )
        elif header is not None:
            ds._write_atomic(
                meta,
                json.dumps(
                    {"format": FORMAT, "format_version": FORMAT_VERSION, **header}, indent=2
                ).encode()
                + b"\n",
            )
        for name in MANIFESTS:
            ds._repair(root / name)
        return ds

    @classmethod
    def read(cls, root: str | Path) -> PairDataset:
        """An existing dataset, for reading only: nothing is created or repaired, so a report
        or an export can run beside a generator that is still writing it."""
        root = Path(root)
        meta = root / "dataset.json"
        if not meta.is_file():
            raise InvalidInput(f"{root} is not a pair dataset (no dataset.json)")
        try:
            fmt = json.loads(meta.read_text()).get("format")
        except (ValueError, AttributeError):
            fmt = None
        if fmt != FORMAT:
            raise InvalidInput(f"{root} is not a pair dataset (dataset.json format)")
        return cls(root)

    @property
    def header(self) -> dict[str, Any]:
        return json.loads((self.root / "dataset.json").read_text())

    # -- writing -------------------------------------------------------------------------

    def _write_atomic(self, path: Path, data: bytes) -> None:
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

    def put_image(self, data: bytes, suffix: str = ".png") -> str:
        """Store image bytes under their content hash; the path relative to the root."""
        rel = f"images/{sha256(data)}{suffix}"
        path = self.root / rel
        if not path.exists():
            self._write_atomic(path, data)
        return rel

    def commit(self, records: Sequence[Record]) -> None:
        """Append a work unit's records to their manifests (by status): one write and one
        fsync per manifest, so a unit is committed whole or (killed) not at all."""
        by_file: dict[str, list[Record]] = {}
        for r in records:
            if r.status not in _FILE_OF:
                raise InvalidInput(f"record {r.unit!r} has no status to file it under")
            by_file.setdefault(_FILE_OF[r.status], []).append(r)
        for name, rows in by_file.items():
            data = "".join(to_line(r) + "\n" for r in rows).encode()
            with open(self.root / name, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    @staticmethod
    def _repair(path: Path) -> None:
        """Drop a trailing partial line (a write the process did not finish)."""
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    # -- reading -------------------------------------------------------------------------

    def records(self, status: str | None = None, committed_only: bool = False) -> Iterator[Record]:
        """Every committed record (of one status, when given), in commit order per manifest;
        a bad line raises BadData naming the file and line. `committed_only` skips a partial
        last line, for readers (review) that run beside a generator still appending."""
        names = [_FILE_OF[status]] if status else list(MANIFESTS)
        for name in names:
            path = self.root / name
            if path.exists():
                for where, data in read_jsonl(path, committed_only):
                    yield from_json(data, where)

    def pairs(self, *statuses: str, committed_only: bool = False) -> Iterator[PairRecord]:
        """The candidate records (accepted, rejected, or those given), in manifest order."""
        for status in statuses or (ACCEPTED, REJECTED):
            for record in self.records(status, committed_only):
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
