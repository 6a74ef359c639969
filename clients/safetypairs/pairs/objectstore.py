"""A pair dataset in an object store (s3://, gs://, ... through fsspec): the records and
images of a local dataset folder, committed without append.

    PREFIX/
      dataset.json               what made it (as in a folder), written once
      images/<sha256>.<ext>      every image, a whole object named by the hash of its bytes
      segments/<n>.jsonl         one per commit: the unit's records, one JSON object a line
      lease.json                 the writer lease (lease.py): one writer per dataset

A commit is ONE object put. The unit's images go first (by content: writing one twice writes
the same bytes), then its records as the next segment, created only where no object has that
name (a conditional write). An object store shows a put whole or not at all, so a unit is
committed whole or not at all, a writer killed at any point leaves nothing to repair, and a
resume on a fresh machine lists the segments to learn which units are done: nothing of the
writer's local disk is needed. A segment put that fails ambiguously (the store took it, the
answer was lost) is recognised on the retry by its bytes. Readers list and read the segments
there when they open the dataset (a snapshot, as for a folder). Should a segment repeat a unit
an earlier segment committed (two writers despite the lease), readers skip the later one: a
unit counts once.

Review logs are appended by people reviewing (contract.review_record) and so live in local
folders only: a dataset here reads as unreviewed; copy it to a folder (merge-datasets) to
review it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from safetypairs.contract.errors import InvalidInput, StorageError
from safetypairs.contract.jsonl import parse_jsonl
from safetypairs.contract.pair_record import Record, from_json, to_line
from safetypairs.pairs.dataset import (
    FORMAT,
    FORMAT_VERSION,
    Dataset,
    check_run,
    file_of,
    is_image_path,
    parse_header,
    sha256,
)
from safetypairs.pairs.lease import DEFAULT_LEASE_S, Lease
from safetypairs.pairs.store_io import StoreIO

SEGMENTS = "segments"
_DIGITS = 9


def take_lease(url: str, lease_s: float = DEFAULT_LEASE_S) -> Lease:
    """The writer lease of the dataset at `url` (waiting out an expiring one)."""
    store = StoreIO(url)
    store.list(SEGMENTS)  # a missing bucket or bad credentials say so before anything else
    lease = Lease(store, lease_s)
    lease.acquire()
    return lease


def _segment(n: int) -> str:
    return f"{SEGMENTS}/{n:0{_DIGITS}d}.jsonl"


class ObjectDataset(Dataset):
    def __init__(self, store: StoreIO) -> None:
        self.store = store
        self._records: list[Record] = []
        self._images: set[str] = set()
        self._next = 0
        self._lease: Lease | None = None
        self._header: dict[str, Any] | None = None

    @property
    def location(self) -> str:
        return self.store.url

    @classmethod
    def read(cls, url: str) -> ObjectDataset:
        """An existing dataset, for reading only (no lease: beside a running writer)."""
        ds = cls(StoreIO(url))
        ds.header  # noqa: B018 - checks that it is a dataset (and that the store answers)
        ds._load()
        return ds

    @classmethod
    def open(
        cls,
        url: str,
        header: dict[str, Any] | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        lease: Lease | None = None,
    ) -> ObjectDataset:
        """Open (creating when new) a dataset to write, holding its lease (`lease`, when the
        caller took it already) until `close`."""
        lease = lease or take_lease(url, lease_s)
        ds = cls(StoreIO(url))
        ds._lease = lease
        try:
            ds._check_header(header)
            ds._load()
        except BaseException:
            ds.close()
            raise
        return ds

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _check_header(self, header: dict[str, Any] | None) -> None:
        if header is not None:
            data = {"format": FORMAT, "format_version": FORMAT_VERSION, **header}
            if self.store.put_new("dataset.json", json.dumps(data, indent=2).encode() + b"\n"):
                return
        check_run(self.store.url, self.header, header)

    @property
    def header(self) -> dict[str, Any]:
        if self._header is None:
            try:
                data: bytes | None = self.store.read("dataset.json")
            except FileNotFoundError:
                data = None
                self.store.list(SEGMENTS)  # says so when it is the bucket that is missing
            self._header = parse_header(data, self.store.url)
        return self._header

    def _load(self) -> None:
        """Read every committed segment, in commit order, skipping repeated units."""
        names = [n for n in self.store.list(SEGMENTS) if n.endswith(".jsonl")]
        self._images = set(n for n in self.store.list("images") if is_image_path(n))
        done: set[str] = set()
        for name, data in self.store.read_many(names).items():
            records = self._parse(name, data)
            units = {r.unit for r in records if r.unit}
            if units & done:
                continue
            done |= units
            self._records.extend(records)
        self._next = max((int(n.rsplit("/", 1)[1].split(".")[0]) for n in names), default=-1) + 1

    def _parse(self, name: str, data: bytes) -> list[Record]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{self.where(name)}: not UTF-8 text ({exc})") from None
        return [from_json(obj, where) for where, obj in parse_jsonl(text, self.where(name))]

    # -- reading -------------------------------------------------------------------------

    def records(self, status: str | None = None) -> Iterator[Record]:
        for record in self._records:
            if status is None or record.status == status:
                yield record

    def _read(self, rel: str, limit: int | None = None) -> bytes:
        data = self.store.read(rel)
        return data if limit is None else data[:limit]

    def where(self, rel: str) -> str:
        return self.store.where(rel)

    def image_names(self) -> list[str]:
        return sorted(self._images)

    # -- writing -------------------------------------------------------------------------

    def put_image(self, data: bytes, suffix: str = ".png") -> str:
        rel = f"images/{sha256(data)}{suffix}"
        if rel not in self._images:
            self.store.put(rel, data)
            self._images.add(rel)
        return rel

    def has_image(self, rel: str) -> bool:
        return rel in self._images

    def put_file(self, name: str, data: bytes) -> str:
        self.store.put(name, data)  # one whole object
        return self.where(name)

    def commit(self, records: Sequence[Record]) -> None:
        """Commit a unit's records whole or not at all: one new segment object."""
        if self._lease is None:
            raise InvalidInput(f"{self.store.url} is open for reading only")
        for r in records:
            file_of(r)  # every record has a status to be filed under
        data = "".join(to_line(r) + "\n" for r in records).encode()
        self._lease.check()
        name = _segment(self._next)
        if not self.store.put_new(name, data) and self.store.read(name) != data:
            raise StorageError(
                f"{self.where(name)} was written by another writer: two writers on one "
                "dataset despite its lease; stopping (run the command again to resume)"
            )
        self._next += 1
        self._records.extend(records)
