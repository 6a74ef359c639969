"""Export a pair dataset to Parquet or to a Hugging Face `datasets` folder, and import back.

One row per record: the accepted pairs, and with `include_rejected` the rejected candidates.
Each row embeds the bytes of its images (source, a, b) as `datasets` Image columns
(struct<bytes, path>), carries the manifest fields flattened into typed columns for analysis,
and keeps the manifest record itself, verbatim, as JSON in `record`. Import reads `record` and
the image bytes only, so fields this module does not know about survive a round trip, and
export -> import -> export gives the same table. Failed work units are not exported: they hold
no pair, and a later generation run retries them. The review columns (review_state, the
reviewers' standing decisions and reasons) come from the dataset's review log; import does not
bring them back (the log is the reviewers' record of this dataset, not part of a pair).

The Parquet file carries the `datasets` features in its schema metadata, so
`datasets.load_dataset("parquet", ...)` reads the image columns as images; the dataset's
dataset.json rides along in the schema metadata (key "safetypairs"), and beside a
`save_to_disk` folder as `safetypairs.json`.

Export refuses a dataset folder that was tampered with rather than skipping the bad row: an
image that is a symbolic link (it would put another file's bytes into the output), not a
regular file, whose bytes do not match the SHA-256 in its name, or that does not decode as an
image stops the export with TamperedFile naming the record and the file. A skipped row would
make a training set silently differ from the dataset it claims to be; the user should look.

pyarrow and `datasets` are imported inside the functions: the SDK imports without them.

(Over 400 lines on purpose: export and import are one format, its columns, coercions, header
and review columns, kept in one file so that the two directions cannot drift apart.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput, SafetyPairsError, TamperedFile
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.contract.pair_record import (
    ACCEPTED,
    REJECTED,
    PairRecord,
    from_line,
    to_line,
)
from safetypairs.contract.review_record import (
    ACCEPT,
    HUMAN_ACCEPTED,
    REJECT,
    UNREVIEWED,
    ReviewRecord,
    pair_state,
    standing,
)
from safetypairs.pairs.dataset import Dataset, PairDataset, is_image_path
from safetypairs.pairs.files import os_errors
from safetypairs.pairs.merge import merge_datasets
from safetypairs.pairs.store import dataset_exists, local_path, read_dataset, upload

FORMATS = ("parquet", "hf")
# `reviewed`: which pairs by people's review (safetypairs.contract.review_record); None: all.
REVIEWED = ("accepted", "any")
HEADER_KEY = b"safetypairs"
HF_HEADER_FILE = "safetypairs.json"
BATCH_ROWS = 64  # rows per Parquet row group: images make rows large

# Image columns and the record's part (source, a member) whose "image" each one carries.
IMAGE_COLUMNS = {"source_image": "source", "a_image": "a", "b_image": "b"}
# What a stored image may be to count as an image: far above anything the services accept, so
# only a file that is no image (or a bomb) fails the check.
_STORED_IMAGE_LIMITS = ImageLimits(max_bytes=1 << 30, max_pixels=1 << 28)
# Flattened columns: name -> (attribute path in the record, type). Views for analysis; import
# ignores them.
FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "id": (("id",), "string"),
    "status": (("status",), "string"),
    "unit": (("unit",), "string"),
    "attempt": (("attempt",), "int64"),
    "candidate": (("candidate",), "int64"),
    "final": (("final",), "bool"),
    "direction": (("direction",), "string"),
    "category": (("category",), "string"),
    "instruction": (("instruction",), "string"),
    "action": (("action",), "string"),
    "element": (("element",), "string"),
    "source_path": (("source", "path"), "string"),
    "source_sha256": (("source", "sha256"), "string"),
    "a_labels": (("a", "labels"), "list_string"),
    "a_p_unsafe": (("a", "p_unsafe"), "float64"),
    "a_category": (("a", "category"), "string"),
    "a_role": (("a", "role"), "string"),
    "b_labels": (("b", "labels"), "list_string"),
    "b_p_unsafe": (("b", "p_unsafe"), "float64"),
    "b_category": (("b", "category"), "string"),
    "b_role": (("b", "role"), "string"),
    "edited": (("edited",), "string"),
    "artifact_matched": (("artifact_matched",), "string"),
    "seed_propose": (("seeds", "propose"), "int64"),
    "seed_edit": (("seeds", "edit"), "int64"),
    "seed_null_edit": (("seeds", "null_edit"), "int64"),
    "judge_model": (("models", "judge"), "string"),
    "edit_model": (("models", "edit"), "string"),
    "judge_untrained": (("models", "judge_untrained"), "bool"),
    "edit_untrained": (("models", "edit_untrained"), "bool"),
    "prompt_rate": (("prompt_versions", "rate"), "string"),
    "prompt_propose": (("prompt_versions", "propose"), "string"),
    "ssim_outside": (("similarity", "ssim_outside"), "float64"),
    "changed_fraction": (("similarity", "changed_fraction"), "float64"),
    "change_bbox": (("similarity", "change_bbox"), "list_int64"),
    "rate_s": (("timings", "rate_s"), "float64"),
    "propose_s": (("timings", "propose_s"), "float64"),
    "edit_s": (("timings", "edit_s"), "float64"),
    "total_s": (("timings", "total_s"), "float64"),
    "reasons": (("reasons",), "list_string"),
}
# The review columns: the pair's human state and its reviewers' standing decisions.
REVIEW_COLUMNS = {
    "review_state": "string",
    "review_accepts": "int64",
    "review_rejects": "int64",
    "review_reasons": "list_string",
    "reviewers": "list_string",
}
# What a file's first bytes must be for the suffix its manifest path gives it.
_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".webp": (b"RIFF",),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".bmp": (b"BM",),
}


def features() -> Any:
    """The `datasets.Features` of an export (the Parquet schema derives from it)."""
    from datasets import Features, Image, Sequence, Value

    def feature(kind: str) -> Any:
        if kind.startswith("list_"):
            return Sequence(Value(kind.removeprefix("list_")))
        return Value(kind)

    columns: dict[str, Any] = {name: feature(kind) for name, (_, kind) in FIELDS.items()}
    columns.update({name: feature(kind) for name, kind in REVIEW_COLUMNS.items()})
    columns.update({name: Image() for name in IMAGE_COLUMNS})
    columns["record"] = Value("string")
    return Features(columns)


# -- export --------------------------------------------------------------------------------


def _get(record: PairRecord, path: tuple[str, ...]) -> Any:
    value: Any = record
    for name in path:
        value = getattr(value, name, None)
    return value


def _coerce(value: Any, kind: str) -> Any:
    """The record's value as the column's type (a list for a tuple, a float for an integral
    number, the text of a flag where the column holds method names)."""
    if value is None:
        return None
    if kind.startswith("list_"):
        return list(value)
    if kind == "string":
        return str(value)
    if kind == "float64":
        return float(value)
    return value


def _review_columns(decisions: dict[str, ReviewRecord] | None) -> dict[str, Any]:
    on_pair = sorted((decisions or {}).values(), key=lambda r: r.reviewer)
    return {
        "review_state": pair_state(decisions),
        "review_accepts": sum(r.decision == ACCEPT for r in on_pair),
        "review_rejects": sum(r.decision == REJECT for r in on_pair),
        "review_reasons": [r.reason for r in on_pair if r.reason],
        "reviewers": [r.reviewer for r in on_pair],
    }


def _image(ds: Dataset, record: PairRecord, rel: str) -> bytes:
    """The checked bytes of one of the record's images (see the module docstring)."""
    try:
        data = ds.read_image(rel)
        decode_image(data, _STORED_IMAGE_LIMITS)
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"record {record.id!r}: cannot read {ds.where(rel)} ({exc.strerror})"
        ) from None
    except TamperedFile as exc:
        raise TamperedFile(f"record {record.id!r}: {exc.message}") from None
    except InvalidInput as exc:  # the decoder's verdict
        raise TamperedFile(
            f"record {record.id!r}: {ds.where(rel)} is not an image ({exc.message})"
        ) from None
    except SafetyPairsError as exc:
        raise type(exc)(f"record {record.id!r}: {exc.message}") from None
    return data


def _row(ds: Dataset, record: PairRecord, review: dict[str, Any]) -> dict[str, Any]:
    row = {name: _coerce(_get(record, path), kind) for name, (path, kind) in FIELDS.items()}
    row.update(review)
    for column, part in IMAGE_COLUMNS.items():
        rel = _get(record, (part, "image"))
        if rel is None:
            row[column] = None
            continue
        if not is_image_path(rel):
            raise InvalidInput(
                f"record {record.id!r}: {part}.image {rel!r} is not an images/<sha256>.<ext> path"
            )
        row[column] = {"bytes": _image(ds, record, rel), "path": rel}
    row["record"] = to_line(record)
    return row


def _rows(
    ds: Dataset, include_rejected: bool, reviewed: str | None
) -> Iterator[tuple[PairRecord, dict[str, Any]]]:
    """The records to export and their review columns, filtered by `reviewed`."""
    decided = standing(ds.reviews())
    records = ds.pairs(ACCEPTED, REJECTED) if include_rejected else ds.pairs(ACCEPTED)
    for record in records:
        review = _review_columns(decided.get(str(record.id)))
        state = review["review_state"]
        if reviewed == "accepted" and state != HUMAN_ACCEPTED:
            continue
        if reviewed == "any" and state == UNREVIEWED:
            continue
        yield record, review


def _write_parquet(
    ds: Dataset, path: Path, include_rejected: bool, reviewed: str | None = None
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features().arrow_schema
    schema = schema.with_metadata({**schema.metadata, HEADER_KEY: json.dumps(ds.header)})
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record, review in _rows(ds, include_rejected, reviewed):
            batch.append(_row(ds, record, review))
            if len(batch) == BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                rows, batch = rows + len(batch), []
        if batch:  # never an empty row group: readers fail on it
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
    return rows


def _write_hf(ds: Dataset, path: Path, include_rejected: bool, reviewed: str | None) -> int:
    from datasets import Dataset

    # Through a Parquet file: `from_parquet` memory-maps it, so a large dataset never has to
    # fit in memory at once.
    work = path.with_name(f"{path.name}.build")
    _remove(work)
    work.mkdir()
    try:
        rows = _write_parquet(ds, work / "rows.parquet", include_rejected, reviewed)
        hf = Dataset.from_parquet(
            str(work / "rows.parquet"), features=features(), cache_dir=str(work / "cache")
        )
        hf.save_to_disk(str(path))
    finally:
        _remove(work)
    (path / HF_HEADER_FILE).write_text(json.dumps(ds.header, indent=2) + "\n")
    return rows


def export_dataset(
    dataset: str | Path,
    out: str | Path,
    to: str,
    include_rejected: bool = False,
    reviewed: str | None = None,
) -> dict[str, Any]:
    """Write `out` (a .parquet file, or a `save_to_disk` folder for "hf"); a summary.
    `reviewed`: "accepted" keeps only the pairs people accepted (every reviewer on the pair),
    "any" only the pairs someone reviewed; None keeps all. The dataset and `out` may be
    object store URLs (pairs/store.py): the export is built locally, then uploaded."""
    if to not in FORMATS:
        raise InvalidInput(f"unknown export format {to!r}; one of {', '.join(FORMATS)}")
    if reviewed not in (None, *REVIEWED):
        raise InvalidInput(f"unknown review filter {reviewed!r}; one of {', '.join(REVIEWED)}")
    ds = read_dataset(dataset)
    folder = local_path(out)
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="safetypairs-export-") as work:
            built = Path(work) / "export"
            rows = _export_to(ds, built, to, include_rejected, reviewed)
            upload(built, str(out))
    else:
        rows = _export_to(ds, folder, to, include_rejected, reviewed)
    return {
        "out": str(out),
        "format": to,
        "rows": rows,
        "include_rejected": include_rejected,
        "reviewed": reviewed,
    }


def _export_to(
    ds: Dataset, out: Path, to: str, include_rejected: bool, reviewed: str | None
) -> int:
    """Export into the local path `out`; the row count."""
    if out.exists():
        raise InvalidInput(f"{out} exists: export to a new path")
    if next(_rows(ds, include_rejected, reviewed), None) is None:
        raise InvalidInput(_nothing_to_export(ds, include_rejected, reviewed))
    # Built beside its final place and renamed at the end: a failed export leaves nothing.
    tmp = out.with_name(f".tmp-{out.name}")
    _remove(tmp)
    try:
        write = _write_parquet if to == "parquet" else _write_hf
        with os_errors(tmp):
            rows = write(ds, tmp, include_rejected, reviewed)
            os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise
    return rows


def _nothing_to_export(ds: PairDataset, include_rejected: bool, reviewed: str | None) -> str:
    """Why an export would hold no row. An empty export is refused, not written: `datasets`
    cannot load a Parquet file without rows ("corresponds to no data")."""
    accepted = sum(1 for _ in ds.pairs(ACCEPTED))
    rejected = sum(1 for _ in ds.pairs(REJECTED))
    if reviewed and (accepted or (include_rejected and rejected)):
        why = f"none of its pairs passes --reviewed {reviewed} (see `safetypairs review`)"
    elif include_rejected:
        why = "it holds no candidate pairs at all"
    else:
        why = (
            f"it holds no accepted pairs ({rejected} rejected candidates: "
            "--include-rejected exports them; `safetypairs report` shows why they were rejected)"
        )
    return f"{ds.root}: nothing to export, so nothing was written: {why}"


# -- import --------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _check_columns(src: Path, names: list[str]) -> None:
    missing = [c for c in ("record", *IMAGE_COLUMNS) if c not in names]
    if missing:
        raise InvalidInput(f"{src} is not a pair-dataset export: no column {', '.join(missing)}")


def _parquet_source(src: Path) -> tuple[dict[str, Any], Iterator[list[dict[str, Any]]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(src)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{src} is not a readable Parquet file ({exc})") from None
    _check_columns(src, pf.schema_arrow.names)
    header = json.loads((pf.schema_arrow.metadata or {}).get(HEADER_KEY, b"{}"))
    columns = ["record", *IMAGE_COLUMNS]
    batches = (b.to_pylist() for b in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns))
    return header, batches


def _hf_source(src: Path) -> tuple[dict[str, Any], Iterator[list[dict[str, Any]]]]:
    from datasets import Dataset, load_from_disk

    try:
        hf = load_from_disk(str(src))
    except Exception as exc:  # datasets raises several kinds for a folder it cannot read
        raise InvalidInput(f"{src} is not a readable datasets folder ({exc})") from None
    if not isinstance(hf, Dataset):
        raise InvalidInput(f"{src} holds several splits: import one split's folder")
    _check_columns(src, hf.column_names)
    header_file = src / HF_HEADER_FILE
    header = json.loads(header_file.read_text()) if header_file.is_file() else {}
    # Arrow format: the image structs as stored (bytes and path), never decoded.
    table = hf.select_columns(["record", *IMAGE_COLUMNS]).with_format("arrow")
    return header, (t.to_pylist() for t in table.iter(batch_size=BATCH_ROWS))


def _restore(ds: Dataset, src: Path, n: int, row: dict[str, Any]) -> PairRecord:
    """The manifest record of row `n`, its images stored again by content hash."""
    where = f"{src} row {n}, column record"
    text = row["record"]
    record = from_line(text if isinstance(text, str) else "", where)
    if not isinstance(record, PairRecord) or record.status not in (ACCEPTED, REJECTED):
        raise InvalidInput(f"{where}: not an accepted or rejected pair record")
    for column, part in IMAGE_COLUMNS.items():
        holder = getattr(record, part)
        rel = holder.image if holder is not None else None
        if rel is None:
            continue
        data = (row[column] or {}).get("bytes")
        suffix = Path(rel).suffix.lower()
        if suffix not in _MAGIC:
            raise InvalidInput(f"{src} row {n}: {part}.image {rel!r} has no known image suffix")
        if not data:
            raise InvalidInput(f"{src} row {n}: {column} is empty but the record names {rel}")
        if not data.startswith(_MAGIC[suffix]) or (suffix == ".webp" and data[8:12] != b"WEBP"):
            raise InvalidInput(f"{src} row {n}: {column} is not a {suffix[1:]} file")
        record = replace(record, **{part: replace(holder, image=ds.put_image(data, suffix))})
    return record


def import_dataset(src: str | Path, out: str | Path) -> dict[str, Any]:
    """Make the pair dataset `out` (a new folder, or a new object store dataset: imported
    into a local folder first, then merged there) from a Parquet file or `save_to_disk`
    folder that `export_dataset` wrote; a summary."""
    folder = local_path(out)
    if folder is not None:
        return _import_to(Path(src), folder)
    if dataset_exists(str(out)):
        raise InvalidInput(f"{out} holds a dataset already: import into a new location")
    with tempfile.TemporaryDirectory(prefix="safetypairs-import-") as work:
        result = _import_to(Path(src), Path(work) / "dataset")
        merge_datasets(out, [Path(work) / "dataset"])
    return {**result, "out": str(out)}


def _import_to(src: Path, out: Path) -> dict[str, Any]:
    if not src.exists():
        raise InvalidInput(f"{src} does not exist")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not an empty folder: import into a new one")
    if src.is_file():
        header, batches = _parquet_source(src)
    elif (src / "dataset_info.json").is_file() or (src / "state.json").is_file():
        header, batches = _hf_source(src)
    else:
        raise InvalidInput(f"{src} is neither a Parquet file nor a datasets save_to_disk folder")
    header = {k: v for k, v in header.items() if k not in ("format", "format_version")}
    tmp = out.with_name(f".tmp-{out.name}")
    _remove(tmp)
    counts = {ACCEPTED: 0, REJECTED: 0}
    try:
        with PairDataset.open(tmp, header=header) as ds:
            n = 0
            for rows in batches:
                records = [_restore(ds, src, n + i, row) for i, row in enumerate(rows)]
                ds.commit(records)
                n += len(rows)
                for r in records:
                    counts[str(r.status)] += 1
        with os_errors(out):
            if out.exists():
                out.rmdir()
            os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise
    return {"out": str(out), "accepted": counts[ACCEPTED], "rejected": counts[REJECTED]}
