"""The pair record: what pair generation writes for every candidate pair (accepted or rejected)
and every failed work unit, and what training, evaluation, the report, export and merge read
back. `to_line` is the one writer and `from_json` the one reader.

On disk a record is a JSON object on one line, e.g. (an accepted pair, shortened)

    {"status": "accepted", "id": "62e8...-to_unsafe-O6-a0c0", "unit": "62e8...:to_unsafe:O6",
     "direction": "to_unsafe", "category": "O6", "instruction": "add a knife", "edited": "b",
     "a": {"image": "images/<sha256>.png", "labels": [], "role": "kept", "p_unsafe": 0.05,
           "category": ""},
     "b": {"image": "images/<sha256>.png", "labels": ["O6"], "role": "edit", ...},
     "similarity": {"ssim_outside": 0.97, "changed_fraction": 0.08, "change_bbox": [x, y, w, h]},
     "seeds": {...}, "models": {...}, "prompt_versions": {...}, "timings": {...}, "reasons": []}

and a training-only pair file needs just "id", "a" and "b" (each "image" and "labels").

A field nobody filled is absent on disk and None here, except inside the figure objects (seeds,
similarity), where null is a value ("no null edit", "nothing outside the change") and is
written. Keys this version does not know are kept in `extra` and written back, so a record
written by a later version survives export -> import or a merge unchanged.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, ClassVar

from safetypairs.contract.jsonl import BadData

ACCEPTED, REJECTED, FAILED = "accepted", "rejected", "failed"
MEMBERS = ("a", "b")


@dataclass(frozen=True)
class Rating:
    """What the judge said about one image: P(unsafe) and the deciding category ("" if safe)."""

    p_unsafe: float
    category: str


@dataclass(frozen=True, kw_only=True)
class _Fields:
    # Whether a None field is written as null (figures) or left out (everything else).
    WRITE_NULLS: ClassVar[bool] = False
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know


@dataclass(frozen=True)
class Source(_Fields):
    path: str | None = None  # where the source image was read from
    sha256: str | None = None
    image: str | None = None  # its copy in the dataset


@dataclass(frozen=True)
class Member(_Fields):
    """One image of a pair and what the judge said about it."""

    image: str | None = None  # relative to the manifest (images/<sha256>.<ext> when generated)
    labels: tuple[str, ...] | None = None  # category codes; empty = safe
    role: str | None = None  # "kept" (the null edit), "source" or "edit"
    p_unsafe: float | None = None
    category: str | None = None

    @property
    def rating(self) -> Rating | None:
        if self.p_unsafe is None:
            return None
        return Rating(self.p_unsafe, self.category or "")


@dataclass(frozen=True)
class Seeds(_Fields):
    WRITE_NULLS: ClassVar[bool] = True
    propose: int | None = None
    edit: int | None = None
    null_edit: int | None = None  # None: the kept image did not go through the editor


@dataclass(frozen=True)
class Similarity(_Fields):
    """How much of the image an edit left alone (see safetypairs.pairs.similarity)."""

    WRITE_NULLS: ClassVar[bool] = True
    ssim_outside: float | None = None  # None: nothing lies outside the changed region
    changed_fraction: float | None = None
    change_bbox: tuple[int, ...] | None = None  # x, y, width, height at the kept image's size


@dataclass(frozen=True)
class Models(_Fields):
    judge: str | None = None
    edit: str | None = None
    judge_untrained: bool | None = None
    edit_untrained: bool | None = None

    def untrained(self) -> list[str]:
        """ "role: model" for each model flagged untrained."""
        flagged = (
            ("judge", self.judge, self.judge_untrained),
            ("edit", self.edit, self.edit_untrained),
        )
        return [f"{role}: {name or 'unnamed model'}" for role, name, flag in flagged if flag]


@dataclass(frozen=True)
class PromptVersions(_Fields):
    rate: str | None = None
    propose: str | None = None


@dataclass(frozen=True)
class Timings(_Fields):
    """Seconds spent on a candidate's unit up to it, per stage."""

    rate_s: float | None = None
    propose_s: float | None = None
    edit_s: float | None = None
    total_s: float | None = None

    def stages(self) -> dict[str, float]:
        return {
            f.name: value
            for f in fields(self)
            if f.name != "extra" and (value := getattr(self, f.name)) is not None
        }


@dataclass(frozen=True)
class PairRecord(_Fields):
    """A candidate pair, accepted or rejected (status None: a training-only pairs file); a
    source too close to the threshold to pair is a rejected record with only `a` rated."""

    status: str | None = None
    id: str | None = None
    unit: str | None = None  # the work unit: (source, direction, category)
    attempt: int | None = None
    candidate: int | None = None
    final: bool | None = None  # the unit's last record: it ends without a pair
    direction: str | None = None  # "to_safe" | "to_unsafe"
    category: str | None = None
    instruction: str | None = None
    action: str | None = None
    element: str | None = None
    source: Source | None = None
    a: Member | None = None
    b: Member | None = None
    edited: str | None = None  # "a" | "b"
    artifact_matched: str | bool | None = None  # a method ("null-edit"; "none" = plain) or a flag
    models: Models | None = None
    seeds: Seeds | None = None
    prompt_versions: PromptVersions | None = None
    similarity: Similarity | None = None
    timings: Timings | None = None
    reasons: tuple[str, ...] | None = None  # why rejected

    def member(self, side: str) -> Member | None:
        return self.a if side == "a" else self.b

    @property
    def edited_member(self) -> str | None:
        """ "a" or "b": as recorded, else the one member whose role is "edit"; None if unknown."""
        if self.edited is not None:
            return self.edited
        roles = [m for m in MEMBERS if (x := self.member(m)) is not None and x.role == "edit"]
        return roles[0] if len(roles) == 1 else None

    @property
    def is_artifact_matched(self) -> bool | None:
        """Whether the kept member went through the editor too; None when not recorded."""
        if isinstance(self.artifact_matched, str):
            return self.artifact_matched != "none"
        return self.artifact_matched


@dataclass(frozen=True)
class ErrorInfo(_Fields):
    kind: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class FailedUnit(_Fields):
    """A work unit that failed (unreadable image, service down): a later run retries it."""

    status: str = FAILED
    unit: str | None = None
    source: Source | None = None
    error: ErrorInfo | None = None


Record = PairRecord | FailedUnit


def is_pair_row(data: dict[str, Any]) -> bool:
    """Whether a JSON object read from a file is a pair record (it has both members) rather
    than one labelled image."""
    return all(m in data for m in MEMBERS)


# -- writing -------------------------------------------------------------------------------


def to_json(record: Any) -> dict[str, Any]:
    """The record as the JSON object written to disk."""
    out = dict(record.extra)
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name != "extra" and (value is not None or record.WRITE_NULLS):
            out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return to_json(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def to_line(record: Record) -> str:
    """The one writer: a record as its manifest line (without the newline)."""
    return json.dumps(to_json(record), sort_keys=True)


# -- reading -------------------------------------------------------------------------------


def from_json(data: Any, where: str) -> Record:
    """The one reader: a manifest object as a record, every field's type checked. `where` names
    the file and line (or row) for the error a bad record raises (BadData)."""
    if not isinstance(data, dict):
        raise BadData(f"{where}: a pair record must be a JSON object, not {type(data).__name__}")
    status = data.get("status")
    if status == FAILED:
        return _decode(FailedUnit, data, where, "")
    if status not in (None, ACCEPTED, REJECTED):
        raise BadData(
            f"{where}: 'status' must be {ACCEPTED}, {REJECTED} or {FAILED}, not {status!r}"
        )
    if isinstance(data.get("id"), str):
        where = f"{where} (pair {data['id']})"
    record = _decode(PairRecord, data, where, "")
    if record.edited not in (None, *MEMBERS):
        raise BadData(f'{where}: \'edited\' must be "a" or "b", not {record.edited!r}')
    if record.artifact_matched == "":
        raise BadData(f"{where}: 'artifact_matched' must be true/false or a method name, not ''")
    return record


def from_line(line: str, where: str) -> Record:
    try:
        data = json.loads(line)
    except (TypeError, ValueError) as exc:
        raise BadData(f"{where}: not valid JSON: {exc}") from None
    return from_json(data, where)


@cache
def _types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name != "extra"}


def _decode(cls: type, data: Any, where: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise BadData(f"{where}: '{prefix.rstrip('.')}' must be an object, not {_show(data)}")
    known = _types(cls)
    values = {
        name: _value(tp, data[name], where, prefix + name)
        for name, tp in known.items()
        if name in data
    }
    return cls(**values, extra={k: v for k, v in data.items() if k not in known})


def _value(tp: Any, value: Any, where: str, name: str) -> Any:
    options = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if is_dataclass(option):
            if isinstance(value, dict):
                return _decode(option, value, where, name + ".")
        elif typing.get_origin(option) is tuple:
            item = typing.get_args(option)[0]
            if isinstance(value, list) and all(_is(item, v) for v in value):
                return tuple(value)
        elif _is(option, value):
            return value
    wanted = " or ".join(_describe(o) for o in options if o is not type(None))
    raise BadData(f"{where}: '{name}' must be {wanted}, not {_show(value)}")


def _is(tp: Any, value: Any) -> bool:
    if tp is bool or isinstance(value, bool):
        return tp is bool and isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float)
    return isinstance(value, tp)


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        items = {str: "strings", int: "integers", float: "numbers"}
        return f"a list of {items.get(typing.get_args(tp)[0], 'values')}"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(tp, "an object")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
