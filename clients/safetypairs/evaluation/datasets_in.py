"""Evaluation data in: every layout read into one EvalSet (images, labels per category, pairs).

Layouts, told apart by what the path holds:
  * the project's pair dataset: `pairs.jsonl` (or a folder holding it), read by
    safetypairs.contract.training_data.read_pairs, optional "edited" / "artifact_matched"
    fields kept;
  * the project's labelled folder: <root>/<category code or "safe">/<images>;
  * a table of images with labels, JSONL or CSV (a file, or a folder holding exactly one of
    metadata.jsonl, metadata.csv, labels.jsonl, labels.csv), image paths relative to the table:
      image column: image | file_name | filename | file | path | image_path
      labels: "labels" (a list of codes, or codes joined by , ; or |, "" or "safe" = safe),
              "label" (a code, "safe", or with --unsafe-category also unsafe/1/true and
              safe/0/false), or one 0/1 column per category code (O1, O6, ...);
      optional "pair_id": two rows sharing one form a pair; optional "edited" (true/false);
  * a Hugging Face `datasets` directory written by save_to_disk (a Dataset, or a DatasetDict
    and a split): an Image column (or a path column), label columns as above (ClassLabel
    values are read as their names); or a pair dataset exported by `safetypairs export --to hf`
    (columns a_image, b_image and the manifest record; accepted pairs only).
Anything else, and any bad record, raises TrainingDataError naming the file and line (or row).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.contract.images import decode_image
from safetypairs.contract.policy import Policy
from safetypairs.contract.training_data import (
    LIMITS,
    TrainingDataError,
    _edit_fields,
    read_labelled,
    read_pairs,
)

IMAGE_KEYS = ("image", "file_name", "filename", "file", "path", "image_path")
TABLE_NAMES = ("metadata.jsonl", "metadata.csv", "labels.jsonl", "labels.csv")
TRUE_WORDS = {"1", "true", "yes", "unsafe"}
FALSE_WORDS = {"0", "false", "no", "safe", ""}


@dataclass(frozen=True)
class Item:
    """One image to score: a file, or bytes held in memory (a Hugging Face dataset's)."""

    id: str
    labels: frozenset[str]
    record: str  # where it came from, for messages
    digest: str  # SHA-256 of the encoded image
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()  # type: ignore[union-attr]


@dataclass(frozen=True)
class EvalPair:
    id: str
    a: int  # index into EvalSet.items
    b: int
    edited: str | None = None  # "a" | "b" | None (not recorded)
    artifact_matched: bool | None = None


@dataclass
class EvalSet:
    items: list[Item] = field(default_factory=list)
    pairs: list[EvalPair] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def extend(self, other: EvalSet) -> None:
        seen = {p.id for p in self.pairs}
        clash = [p.id for p in other.pairs if p.id in seen]
        if clash:
            raise TrainingDataError(f"pair id(s) {clash[:5]} appear in more than one source")
        offset = len(self.items)
        self.items += other.items
        self.pairs += [
            EvalPair(p.id, p.a + offset, p.b + offset, p.edited, p.artifact_matched)
            for p in other.pairs
        ]
        self.sources += other.sources

    def materialise(self, folder: Path) -> list[Path]:
        """A file for every item (in-memory images written once, named by their digest):
        what training and the embedding cache read."""
        paths = []
        for item in self.items:
            if item.path is not None:
                paths.append(item.path)
                continue
            fmt = (Image.open(io.BytesIO(item.read())).format or "img").lower()
            path = Path(folder) / f"{item.digest}.{fmt}"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(item.read())
            paths.append(path)
        return paths


@dataclass(frozen=True)
class ReadOptions:
    unsafe_category: str = ""  # the code binary "unsafe" labels mean; "" = refuse them
    split: str = ""  # a DatasetDict's split; "" = "test", or the only one


def load_eval_set(
    paths: Iterable[Path | str], policy: Policy, options: ReadOptions | None = None
) -> EvalSet:
    """Every path read and checked (images decoded, labels in the policy) into one set."""
    options = options or ReadOptions()
    if options.unsafe_category:
        policy.check_codes([options.unsafe_category])
    out = EvalSet()
    for path in paths:
        out.extend(_load_one(Path(path), policy, options))
    if not out.items:
        raise TrainingDataError("no images to evaluate")
    return out


def _load_one(path: Path, policy: Policy, options: ReadOptions) -> EvalSet:
    if path.is_file():
        if path.suffix == ".jsonl":
            first = next((d for _, d in _jsonl_rows(path)), {})
            if "a" in first and "b" in first:
                return _from_pairs(path, policy)
            return _from_table(path, _jsonl_rows(path), policy, options)
        if path.suffix == ".csv":
            return _from_table(path, _csv_rows(path), policy, options)
        raise TrainingDataError(
            f"{path}: not a dataset file this reads (pairs.jsonl, a labels .jsonl or .csv)"
        )
    if not path.is_dir():
        raise TrainingDataError(f"{path}: no such file or folder")
    if (path / "pairs.jsonl").is_file():
        return _from_pairs(path / "pairs.jsonl", policy)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _from_hf(path, policy, options)
    tables = [path / n for n in TABLE_NAMES if (path / n).is_file()]
    if len(tables) > 1:
        raise TrainingDataError(
            f"{path}: holds {', '.join(t.name for t in tables)}; give one of them as the path"
        )
    if tables:
        return _load_one(tables[0], policy, options)
    subs = [p.name for p in path.iterdir() if p.is_dir()]
    if subs and all(s == "safe" or s in policy.codes for s in subs):
        return _from_examples(read_labelled(path, policy), str(path))
    raise TrainingDataError(
        f"{path}: not a dataset layout this reads: expected pairs.jsonl, one of "
        f"{', '.join(TABLE_NAMES)}, a Hugging Face save_to_disk folder (state.json or "
        f"dataset_dict.json), or folders named 'safe' / {', '.join(policy.codes)} "
        f"(found folders: {', '.join(sorted(subs)) or 'none'})"
    )


def _from_examples(examples: Sequence[Any], source: str) -> EvalSet:
    items = [Item(str(ex.path), ex.labels, ex.record, ex.digest, path=ex.path) for ex in examples]
    return EvalSet(items, [], [source])


def _from_pairs(path: Path, policy: Policy) -> EvalSet:
    out = EvalSet(sources=[str(path)])
    for pair in read_pairs(path, policy):
        for ex, member in ((pair.a, "a"), (pair.b, "b")):
            out.items.append(
                Item(f"{pair.id}/{member}", ex.labels, ex.record, ex.digest, path=ex.path)
            )
        n = len(out.items)
        out.pairs.append(EvalPair(pair.id, n - 2, n - 1, pair.edited, pair.artifact_matched))
    return out


# -- tables (JSONL, CSV, Hugging Face rows) -------------------------------------------------


def _jsonl_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise TrainingDataError(f"{where}: not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise TrainingDataError(f"{where}: must be a JSON object")
        yield where, row


def _csv_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise TrainingDataError(f"{path.name}: empty CSV (it needs a header row)")
        for row in reader:
            yield f"{path.name} line {reader.line_num}", row


def _check_bytes(data: bytes, where: str) -> str:
    try:
        decode_image(data, LIMITS)
    except (InvalidInput, PayloadTooLarge) as exc:
        raise TrainingDataError(f"{where}: image is unusable: {exc.message}") from None
    return hashlib.sha256(data).hexdigest()


def _split_codes(text: str) -> list[str]:
    for sep in ";|":
        text = text.replace(sep, ",")
    return [c.strip() for c in text.split(",") if c.strip() and c.strip().lower() != "safe"]


def _flag(value: Any) -> bool | None:
    """A yes/no value (true, 1, "unsafe", "0", ...), or None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    return None


def _binary(value: Any, options: ReadOptions, where: str) -> list[str] | None:
    """A safe/unsafe value as labels, or None when it is not a binary value."""
    flag = _flag(value)
    if flag is False:
        return []
    if flag:
        if not options.unsafe_category:
            raise TrainingDataError(
                f"{where}: label {value!r} says unsafe without a category; give the category "
                "it means (--unsafe-category O6)"
            )
        return [options.unsafe_category]
    return None


def _row_labels(row: dict[str, Any], policy: Policy, options: ReadOptions, where: str) -> list:
    if "labels" in row:
        raw = row["labels"]
        codes = _split_codes(raw) if isinstance(raw, str) else raw
    elif "label" in row:
        raw = row["label"]
        codes = _binary(raw, options, where)
        if codes is None:
            codes = [str(raw).strip()] if isinstance(raw, str) else raw
    elif columns := [c for c in policy.codes if c in row]:
        codes = []
        for code in columns:
            flag = _flag(row[code])
            if flag is None:
                raise TrainingDataError(f"{where}: column {code} must be 0/1, not {row[code]!r}")
            codes += [code] if flag else []
    else:
        raise TrainingDataError(
            f"{where}: no labels: give a 'labels' or 'label' column, or one 0/1 column per "
            f"category code ({', '.join(policy.codes)})"
        )
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise TrainingDataError(f"{where}: labels must be category codes, not {raw!r}")
    unknown = [c for c in codes if c not in policy.codes]
    if unknown:
        raise TrainingDataError(
            f"{where}: label(s) {', '.join(map(repr, unknown))} not in policy {policy.name!r} "
            f"({', '.join(policy.codes)}; 'safe' for none)"
        )
    return codes


def _row_image(row: dict[str, Any], base: Path, where: str) -> tuple[Path | None, bytes]:
    key = next((k for k in IMAGE_KEYS if row.get(k) not in (None, "")), None)
    if key is None:
        raise TrainingDataError(f"{where}: no image: give one of the columns {IMAGE_KEYS}")
    value = row[key]
    if isinstance(value, bytes):
        return None, value
    if not isinstance(value, str):
        raise TrainingDataError(f"{where}: column {key!r} must be an image path")
    path = (base / value).resolve()
    if not path.is_file():
        raise TrainingDataError(f"{where}: image {path} does not exist")
    return path, path.read_bytes()


def _from_table(
    path: Path,
    rows: Iterable[tuple[str, dict[str, Any]]],
    policy: Policy,
    options: ReadOptions,
    base: Path | None = None,
) -> EvalSet:
    out = EvalSet(sources=[str(path)])
    members: dict[str, list[tuple[int, str, Any]]] = {}
    for where, row in rows:
        labels = frozenset(_row_labels(row, policy, options, where))
        file, data = _row_image(row, base or path.parent, where)
        digest = _check_bytes(data, where)
        item_id = str(file) if file else where
        kept = None if file else data  # files are read again when scored; bytes stay
        out.items.append(Item(item_id, labels, where, digest, path=file, data=kept))
        if row.get("pair_id") not in (None, ""):
            members.setdefault(str(row["pair_id"]), []).append(
                (len(out.items) - 1, where, row.get("edited"))
            )
    for pair_id, rows_of in members.items():
        where = f"{path.name}: pair {pair_id!r} ({', '.join(w for _, w, _ in rows_of)})"
        if len(rows_of) != 2:
            raise TrainingDataError(f"{where}: a pair needs exactly two rows, not {len(rows_of)}")
        (a, _, edited_a), (b, _, edited_b) = rows_of
        if out.items[a].labels == out.items[b].labels:
            raise TrainingDataError(f"{where}: both images have the same labels")
        flags = (_flag(edited_a), _flag(edited_b))
        edited = "a" if flags == (True, False) else "b" if flags == (False, True) else None
        out.pairs.append(EvalPair(pair_id, a, b, edited))
    return out


def _from_hf(path: Path, policy: Policy, options: ReadOptions) -> EvalSet:
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
        return _from_exported_pairs(path, name, loaded, policy, options)
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

    return _from_table(path, rows(), policy, options, base=path)


def _from_exported_pairs(
    path: Path, name: str, loaded: Any, policy: Policy, options: ReadOptions
) -> EvalSet:
    """Rows of `safetypairs export --to hf`: each the manifest record (JSON) and its images."""
    import datasets

    for col in ("a_image", "b_image"):
        loaded = loaded.cast_column(col, datasets.Image(decode=False))
    out = EvalSet(sources=[str(path)])
    for i, row in enumerate(loaded):
        where = f"{name} row {i}"
        try:
            record = json.loads(row["record"])
        except (TypeError, ValueError) as exc:
            raise TrainingDataError(
                f"{where}: 'record' is not a JSON manifest record: {exc}"
            ) from None
        if record.get("status", "accepted") != "accepted":
            continue  # exported with --include-rejected: not a pair
        pair_id = str(record.get("id", ""))
        for member in ("a", "b"):
            image = row[f"{member}_image"] or {}
            data = image.get("bytes")
            if not data or not isinstance(record.get(member), dict):
                raise TrainingDataError(f"{where}: pair {pair_id!r} lacks image {member}")
            labels = frozenset(_row_labels(record[member], policy, options, where))
            item_id = f"{pair_id}/{member}"
            out.items.append(Item(item_id, labels, where, _check_bytes(data, where), data=data))
        if out.items[-1].labels == out.items[-2].labels:
            raise TrainingDataError(f"{where}: both images of pair {pair_id!r} have one label")
        edited, matched = _edit_fields(record, where)
        n = len(out.items)
        out.pairs.append(EvalPair(pair_id, n - 2, n - 1, edited, matched))
    return out
