"""Merging datasets that several generator processes wrote (one shard each) into one, without
duplicates: a record is identified by its status and id (units for failures). Sources and the
target are folders or object store URLs (pairs/store.py). Sources are read as readers read
them (committed units only, every image checked against its hash); the target is written
under its writer lock or lease, one commit per source, so a merge killed midway and run again
adds each source once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import FailedUnit, Record
from safetypairs.pairs.store import open_dataset, read_dataset


def _key(record: Record) -> tuple[str | None, str | None]:
    return record.status, record.unit if isinstance(record, FailedUnit) else record.id


def merge_datasets(out: str | Path, inputs: Sequence[str | Path]) -> dict[str, int]:
    """Merge `inputs` into `out` (created, or extended when it exists); returns counts."""
    if not inputs:
        raise InvalidInput("give at least one dataset to merge")
    sources = [read_dataset(p) for p in inputs]
    runs = [{k: v for k, v in s.header["run"].items() if k != "shard"} for s in sources]
    for path, run in zip(inputs[1:], runs[1:], strict=True):
        if run != runs[0]:
            raise InvalidInput(f"{path} was generated with other settings than {inputs[0]}")
    header = {**sources[0].header, "run": {**sources[0].header["run"], "shard": "merged"}}
    header.pop("format", None)
    header.pop("format_version", None)
    with open_dataset(out, header) as target:
        seen = {_key(r) for r in target.records()}
        added = duplicates = 0
        for source in sources:
            fresh = []
            for record in source.records():
                key = _key(record)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                fresh.append(record)
            for rel in source.image_names():
                if not target.has_image(rel):
                    target.put_image(source.read_image(rel), Path(rel).suffix)
            if fresh:
                target.commit(fresh)
            added += len(fresh)
    return {"added": added, "duplicates": duplicates}
