"""Tables of images with labels: JSONL, CSV, and the rows of a Hugging Face dataset, read
into an EvalSet (optional "pair_id" pairs two rows)."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.contract.images import decode_image
from safetypairs.contract.policy import Policy
from safetypairs.contract.training_data import LIMITS, TrainingDataError
from safetypairs.evaluation.evalset import EvalPair, EvalSet, Item, ReadOptions

IMAGE_KEYS = ("image", "file_name", "filename", "file", "path", "image_path")
TRUE_WORDS = {"1", "true", "yes", "unsafe"}
FALSE_WORDS = {"0", "false", "no", "safe", ""}


def csv_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise TrainingDataError(f"{path.name}: empty CSV (it needs a header row)")
        for row in reader:
            yield f"{path.name} line {reader.line_num}", row


def check_bytes(data: bytes, where: str) -> str:
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


def row_labels(row: dict[str, Any], policy: Policy, options: ReadOptions, where: str) -> list:
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


def from_table(
    path: Path,
    rows: Iterable[tuple[str, dict[str, Any]]],
    policy: Policy,
    options: ReadOptions,
    base: Path | None = None,
) -> EvalSet:
    out = EvalSet(sources=[str(path)])
    members: dict[str, list[tuple[int, str, Any]]] = {}
    for where, row in rows:
        labels = frozenset(row_labels(row, policy, options, where))
        file, data = _row_image(row, base or path.parent, where)
        digest = check_bytes(data, where)
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
