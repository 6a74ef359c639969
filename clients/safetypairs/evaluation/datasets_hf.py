"""Hugging Face `datasets` folders written by save_to_disk, read into an EvalSet: an image
table, or a pair dataset exported by `safetypairs export --to hf`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from safetypairs.contract.pair_record import ACCEPTED, MEMBERS, PairRecord, from_line
from safetypairs.contract.policy import Policy
from safetypairs.contract.training_data import TrainingDataError, policy_labels
from safetypairs.evaluation.evalset import EvalPair, EvalSet, Item, ReadOptions
from safetypairs.evaluation.tables import check_bytes, from_table


def from_hf(path: Path, policy: Policy, options: ReadOptions) -> EvalSet:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise TrainingDataError(f"{path}: not a readable save_to_disk folder: {exc}") from None
    name = path.name
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        split = options.split or ("test" if "test" in splits else "")
        if not split and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            raise TrainingDataError(
                f"{path}: choose a split with --split ({', '.join(splits)})"
                + (f"; {options.split!r} is not one" if options.split else "")
            )
        loaded, name = loaded[split], f"{path.name}[{split}]"
    features = loaded.features
    if {"a_image", "b_image", "record"} <= set(features):
        return _from_exported_pairs(path, name, loaded, policy)
    for col, feature in features.items():
        if isinstance(feature, datasets.Image):
            loaded = loaded.cast_column(col, datasets.Image(decode=False))

    def rows() -> Iterable[tuple[str, dict[str, Any]]]:
        for i, row in enumerate(loaded):
            for col, feature in features.items():
                value = row[col]
                if isinstance(feature, datasets.Image) and isinstance(value, dict):
                    row[col] = value.get("bytes") or value.get("path")
                elif isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
                    row[col] = feature.int2str(value)
                elif isinstance(feature, datasets.Sequence | datasets.List) and isinstance(
                    getattr(feature, "feature", None), datasets.ClassLabel
                ):
                    row[col] = [feature.feature.int2str(v) for v in value]
            yield f"{name} row {i}", row

    return from_table(path, rows(), policy, options, base=path)


def _from_exported_pairs(path: Path, name: str, loaded: Any, policy: Policy) -> EvalSet:
    """Rows of `safetypairs export --to hf`: each the manifest record (JSON) and its images."""
    import datasets

    for col in ("a_image", "b_image"):
        loaded = loaded.cast_column(col, datasets.Image(decode=False))
    out = EvalSet(sources=[str(path)])
    for i, row in enumerate(loaded):
        where = f"{name} row {i}"
        text = row["record"]
        record = from_line(text if isinstance(text, str) else "", f"{where}, column record")
        if not isinstance(record, PairRecord) or record.status not in (None, ACCEPTED):
            continue  # exported with --include-rejected: not a pair
        pair_id = record.id or ""
        for side in MEMBERS:
            data = (row[f"{side}_image"] or {}).get("bytes")
            member = record.member(side)
            if not data or member is None:
                raise TrainingDataError(f"{where}: pair {pair_id!r} lacks image {side}")
            labels = policy_labels(member.labels or (), policy, f"{where} image {side}")
            item_id = f"{pair_id}/{side}"
            out.items.append(Item(item_id, labels, where, check_bytes(data, where), data=data))
        if out.items[-1].labels == out.items[-2].labels:
            raise TrainingDataError(f"{where}: both images of pair {pair_id!r} have one label")
        n = len(out.items)
        out.pairs.append(
            EvalPair(
                pair_id,
                n - 2,
                n - 1,
                record.edited_member,
                record.is_artifact_matched,
                tuple(record.models.untrained() if record.models else ()),
            )
        )
    return out
