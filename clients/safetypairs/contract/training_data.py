"""Training data: labelled images (JSONL or folders) and counterfactual pair datasets.

Labelled JSONL, one record per line, paths relative to the file:
    {"image": "img/001.jpg", "labels": ["O6"]}          labels [] = safe
Labelled folder: <root>/<category code or "safe">/<image files>.
Pair dataset (what pair generation writes), `pairs.jsonl`:
    {"id": "p1", "a": {"image": "p1_a.png", "labels": []},
                 "b": {"image": "p1_b.png", "labels": ["O6"]}}
The two images of a pair differ only in the safety-relevant feature, so their labels differ.
Optional pair fields, for the confound check (which member was edited, and whether the kept
member went through the editor too, so both carry its traces):
    "edited": "a" | "b"          else read from a member's "role": "edit", when there is one
    "artifact_matched": true | false | "null-edit" | "none"    (a string names the method;
                                  "none" means plain: only the edited member saw the editor)

Every record is checked before anything is embedded; a problem raises TrainingDataError naming
the record (file and line, or path).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.contract.policy import Policy

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)


class TrainingDataError(InvalidInput):
    """A training record is unusable; the message names it."""


@dataclass(frozen=True)
class Example:
    path: Path
    labels: frozenset[str]
    group: str  # examples of one group always land in the same split (a pair is a group)
    record: str  # where it came from, for messages
    digest: str  # SHA-256 of the file: the embedding cache key, and what makes duplicates


@dataclass(frozen=True)
class Pair:
    id: str
    a: Example
    b: Example
    edited: str | None = None  # "a" or "b"; None when the record does not say
    artifact_matched: bool | None = None  # None when the record does not say


def _check_image(path: Path, record: str) -> str:
    """Check that the image decodes; return its SHA-256 (read once, here)."""
    if not path.is_file():
        raise TrainingDataError(f"{record}: image {path} does not exist")
    data = path.read_bytes()
    try:
        decode_image(data, LIMITS)
    except (InvalidInput, PayloadTooLarge) as exc:
        raise TrainingDataError(f"{record}: image {path} is unusable: {exc.message}") from None
    return hashlib.sha256(data).hexdigest()


def _labels(raw: Any, policy: Policy, record: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise TrainingDataError(f"{record}: labels must be a list of category codes")
    unknown = [x for x in raw if x not in policy.codes]
    if unknown:
        raise TrainingDataError(
            f"{record}: label(s) {', '.join(map(repr, unknown))} not in policy {policy.name!r} "
            f"({', '.join(policy.codes)})"
        )
    return frozenset(raw)


def _jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        record = f"{path.name} line {n}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise TrainingDataError(f"{record}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise TrainingDataError(f"{record}: must be a JSON object")
        records.append((record, data))
    return records


def _example(data: Any, base: Path, policy: Policy, record: str, group: str) -> Example:
    if not isinstance(data, dict) or not isinstance(data.get("image"), str):
        raise TrainingDataError(f"{record}: needs an 'image' path")
    path = (base / data["image"]).resolve()
    labels = _labels(data.get("labels", []), policy, record)
    digest = _check_image(path, record)
    return Example(path, labels, group or str(path), record, digest)


def read_labelled(path: Path, policy: Policy) -> list[Example]:
    """A labelled JSONL file or a folder of per-category folders."""
    path = Path(path)
    if path.is_dir():
        examples = []
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            labels = frozenset() if sub.name == "safe" else _labels([sub.name], policy, str(sub))
            for image in sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
                digest = _check_image(image, str(image))
                examples.append(
                    Example(image.resolve(), labels, str(image.resolve()), str(image), digest)
                )
        if not examples:
            raise TrainingDataError(f"{path}: no images in category folders (code or 'safe')")
        return examples
    return [_example(d, path.parent, policy, r, "") for r, d in _jsonl(path)]


def read_pairs(path: Path, policy: Policy) -> list[Pair]:
    path = Path(path)
    pairs, seen = [], set()
    for record, data in _jsonl(path):
        pair_id = str(data.get("id", ""))
        if not pair_id:
            raise TrainingDataError(f"{record}: a pair needs an 'id'")
        if pair_id in seen:
            raise TrainingDataError(f"{record}: pair id {pair_id!r} appears twice")
        seen.add(pair_id)
        where = f"{record} (pair {pair_id})"
        a = _example(data.get("a"), path.parent, policy, f"{where} image a", f"pair:{pair_id}")
        b = _example(data.get("b"), path.parent, policy, f"{where} image b", f"pair:{pair_id}")
        if a.labels == b.labels:
            raise TrainingDataError(
                f"{where}: both images have the labels {sorted(a.labels) or ['safe']}; the two "
                "images of a pair must differ in their safety label"
            )
        edited, matched = _edit_fields(data, where)
        pairs.append(Pair(pair_id, a, b, edited, matched))
    return pairs


def _edit_fields(data: dict[str, Any], where: str) -> tuple[str | None, bool | None]:
    """The optional "edited" and "artifact_matched" fields of a pair record, checked."""
    edited = data.get("edited")
    if edited is None:
        roles = [
            m for m in ("a", "b") if isinstance(data[m], dict) and data[m].get("role") == "edit"
        ]
        edited = roles[0] if len(roles) == 1 else None
    elif edited not in ("a", "b"):
        raise TrainingDataError(f'{where}: \'edited\' must be "a" or "b", not {edited!r}')
    matched = data.get("artifact_matched")
    if isinstance(matched, str) and matched:
        matched = matched != "none"
    elif matched is not None and not isinstance(matched, bool):
        raise TrainingDataError(
            f"{where}: 'artifact_matched' must be true/false or a method name, not {matched!r}"
        )
    return edited, matched
