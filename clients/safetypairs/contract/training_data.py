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

A pair line is read by safetypairs.contract.pair_record (the same record generation writes).
Every record is checked before anything is embedded; a problem raises TrainingDataError naming
the record (file and line, or path).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.contract.jsonl import BadData, read_jsonl
from safetypairs.contract.pair_record import Member, PairRecord, from_json
from safetypairs.contract.policy import Policy
from safetypairs.contract.review_record import REVIEW_LOG, human_accepted

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)


# The name training and evaluation callers know: a data file or record is unusable.
TrainingDataError = BadData


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
    # "role: model" for each model flagged untrained that made this pair (labels or edits
    # from random weights): whatever is trained or evaluated on it must say so.
    untrained: tuple[str, ...] = ()


def untrained_sources(marks: Sequence[tuple[str, ...]]) -> list[str]:
    """Each untrained model named in `marks` (one pair's `untrained` each), with how many of
    the pairs it made: "judge: tiny-vlm (12 of 12 pairs)"."""
    counts: dict[str, int] = {}
    for mark in marks:
        for model in mark:
            counts[model] = counts.get(model, 0) + 1
    return [f"{model} ({n} of {len(marks)} pairs)" for model, n in sorted(counts.items())]


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


def policy_labels(raw: Any, policy: Policy, record: str) -> frozenset[str]:
    """Category codes, each checked to be one of the policy's."""
    if not isinstance(raw, list | tuple) or not all(isinstance(x, str) for x in raw):
        raise TrainingDataError(f"{record}: labels must be a list of category codes")
    unknown = [x for x in raw if x not in policy.codes]
    if unknown:
        raise TrainingDataError(
            f"{record}: label(s) {', '.join(map(repr, unknown))} not in policy {policy.name!r} "
            f"({', '.join(policy.codes)})"
        )
    return frozenset(raw)


def _example(
    image: Any, labels: Any, base: Path, policy: Policy, record: str, group: str
) -> Example:
    if not isinstance(image, str):
        raise TrainingDataError(f"{record}: needs an 'image' path")
    path = (base / image).resolve()
    checked = policy_labels(labels, policy, record)
    digest = _check_image(path, record)
    return Example(path, checked, group or str(path), record, digest)


def read_labelled(path: Path, policy: Policy) -> list[Example]:
    """A labelled JSONL file or a folder of per-category folders."""
    path = Path(path)
    if path.is_dir():
        examples = []
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            labels = (
                frozenset() if sub.name == "safe" else policy_labels([sub.name], policy, str(sub))
            )
            for image in sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
                digest = _check_image(image, str(image))
                examples.append(
                    Example(image.resolve(), labels, str(image.resolve()), str(image), digest)
                )
        if not examples:
            raise TrainingDataError(f"{path}: no images in category folders (code or 'safe')")
        return examples
    return [
        _example(d.get("image"), d.get("labels", []), path.parent, policy, where, "")
        for where, d in read_jsonl(path)
    ]


def read_pairs(path: Path, policy: Policy, human_accepted_only: bool = False) -> list[Pair]:
    """The pairs of a pair dataset (its folder, or its pairs.jsonl). `human_accepted_only`:
    only those people accepted in the review log beside it (reviews.jsonl in the dataset; see
    contract.review_record). A generated dataset without accepted pairs is an error saying so."""
    path = Path(path)
    if path.is_dir():
        path = path / "pairs.jsonl"
    if (path.parent / "dataset.json").is_file() and (
        not path.is_file() or path.stat().st_size == 0
    ):
        raise TrainingDataError(
            f"{path.parent}: a pair dataset with no accepted pairs (its rejected candidates "
            "and their reasons are in rejected.jsonl and `safetypairs report`): nothing to use"
        )
    keep = None
    if human_accepted_only:
        if not (path.parent / REVIEW_LOG).is_file():
            raise TrainingDataError(
                f"{path}: only human-accepted pairs were asked for, but {path.parent} has no "
                f"{REVIEW_LOG} (review it with `safetypairs review`)"
            )
        keep = human_accepted(path.parent)
    pairs, seen = [], set()
    for where, data in read_jsonl(path):
        record = from_json(data, where)
        if not isinstance(record, PairRecord):
            raise TrainingDataError(f"{where}: a failed work unit, not a pair")
        if not record.id:
            raise TrainingDataError(f"{where}: a pair needs an 'id'")
        if record.id in seen:
            raise TrainingDataError(f"{where}: pair id {record.id!r} appears twice")
        seen.add(record.id)
        if keep is not None and record.id not in keep:
            continue
        where = f"{where} (pair {record.id})"
        a, b = (
            _member(record.member(m), path.parent, policy, f"{where} image {m}", record.id)
            for m in ("a", "b")
        )
        if a.labels == b.labels:
            raise TrainingDataError(
                f"{where}: both images have the labels {sorted(a.labels) or ['safe']}; the two "
                "images of a pair must differ in their safety label"
            )
        # People accepted these pairs in review: their labels are the reviewers', whatever
        # made them, so a model's untrained mark does not travel with them.
        untrained = (
            () if keep is not None else tuple(record.models.untrained() if record.models else ())
        )
        pairs.append(
            Pair(record.id, a, b, record.edited_member, record.is_artifact_matched, untrained)
        )
    return pairs


def _member(member: Member | None, base: Path, policy: Policy, where: str, pair_id: str) -> Example:
    if member is None:
        raise TrainingDataError(f"{where}: needs an 'image' path")
    labels = () if member.labels is None else member.labels
    return _example(member.image, labels, base, policy, where, f"pair:{pair_id}")
