"""Merging datasets that several generator processes wrote (one shard each) into one, without
duplicates: a record is identified by its status and id (units for failures). Sources are
read as readers read them (committed units only, no links followed, every image checked
against its hash); the target is written under its writer lock, one commit per source."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import FailedUnit, Record
from safetypairs.pairs.dataset import PairDataset, is_image_path


def _key(record: Record) -> tuple[str | None, str | None]:
    return record.status, record.unit if isinstance(record, FailedUnit) else record.id


def merge_datasets(out: str | Path, inputs: Sequence[str | Path]) -> dict[str, int]:
    """Merge `inputs` into `out` (created, or extended when it exists); returns counts."""
    if not inputs:
        raise InvalidInput("give at least one dataset to merge")
    sources = [PairDataset.read(p) for p in inputs]
    runs = [{k: v for k, v in s.header["run"].items() if k != "shard"} for s in sources]
    for path, run in zip(inputs[1:], runs[1:], strict=True):
        if run != runs[0]:
            raise InvalidInput(f"{path} was generated with other settings than {inputs[0]}")
    header = {**sources[0].header, "run": {**sources[0].header["run"], "shard": "merged"}}
    header.pop("format", None)
    header.pop("format_version", None)
    with PairDataset.open(out, header) as target:
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
            for image in sorted((source.root / "images").iterdir()):
                rel = f"images/{image.name}"
                if is_image_path(rel) and not (target.root / rel).exists():
                    target.put_image(source.read_image(rel), image.suffix)
            target.commit(fresh)
            added += len(fresh)
    return {"added": added, "duplicates": duplicates}
