"""The review log: people's decisions on a dataset's pairs, `reviews.jsonl` in the dataset.

One JSON object a line, one line per decision, never rewritten:

    {"pair": "62e8...-to_unsafe-O6-a0c1", "reviewer": "ana", "decision": "reject",
     "reason": "artifacts", "note": "", "time": "2026-12-06T02:50:11.123456+00:00"}

"decision" is "accept", "reject" (with a `reason` from REASONS; "other" wants a note) or
"undo", which withdraws that reviewer's latest standing decision on the pair. A reviewer's
decisions on a pair are replayed in order as a stack, so reviewing again appends and the latest
decision counts, and undo returns to the one before.

`append_review` is the one writer and `read_reviews` the one reader. Several reviewers (threads
of one server, or several servers) append at once: each append takes an exclusive lock on the
file, drops a partial last line a killed writer left, writes the line in one O_APPEND write and
fsyncs before unlocking, so no decision is lost or torn. The reader takes whole lines only, so
it can run beside a writer.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from safetypairs.contract.jsonl import BadData, read_jsonl

REVIEW_LOG = "reviews.jsonl"
ACCEPT, REJECT, UNDO = "accept", "reject", "undo"
DECISIONS = (ACCEPT, REJECT, UNDO)
# Why a person rejects a pair: a short fixed list, so rejections can be counted.
REASONS = {
    "no_flip": "label did not flip",
    "changed_too_much": "more than the feature changed",
    "edit_not_visible": "edit not visible",
    "artifacts": "artifacts",
    "policy_wrong": "policy wrong",
    "other": "other (note)",
}
MAX_NOTE = 2000
MAX_NAME = 64

# A pair's human review state, from every reviewer's standing decision.
UNREVIEWED, HUMAN_ACCEPTED, HUMAN_REJECTED, DISPUTED = (
    "unreviewed",
    "accepted",
    "rejected",
    "disputed",
)
STATES = (UNREVIEWED, HUMAN_ACCEPTED, HUMAN_REJECTED, DISPUTED)


@dataclass(frozen=True)
class ReviewRecord:
    pair: str
    reviewer: str
    decision: str
    reason: str = ""
    note: str = ""
    time: str = ""  # ISO 8601, UTC


def check_reviewer(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadData(f"reviewer name must be 1 to {MAX_NAME} characters, not {name!r}")
    if not name.isprintable():
        raise BadData(f"reviewer name {name!r} has control characters")
    return name


def review(
    pair: str, reviewer: str, decision: str, reason: str = "", note: str = ""
) -> ReviewRecord:
    """A checked decision, stamped now."""
    record = ReviewRecord(pair, reviewer, decision, reason, note, datetime.now(UTC).isoformat())
    return from_json(asdict(record), "decision")


def from_json(data: object, where: str) -> ReviewRecord:
    """The one reader of a log line's object; BadData names `where` and the field."""
    if not isinstance(data, dict):
        raise BadData(f"{where}: a review must be a JSON object")
    for key in ("pair", "reviewer", "decision", "reason", "note", "time"):
        if not isinstance(data.get(key, ""), str):
            raise BadData(f"{where}: '{key}' must be a string")
    record = ReviewRecord(**{k: data.get(k, "") for k in ReviewRecord.__dataclass_fields__})
    if not record.pair:
        raise BadData(f"{where}: 'pair' must name a pair id")
    check_reviewer(record.reviewer)
    if record.decision not in DECISIONS:
        raise BadData(f"{where}: 'decision' must be one of {', '.join(DECISIONS)}")
    if record.decision == REJECT and record.reason not in REASONS:
        raise BadData(f"{where}: a rejection needs a reason, one of {', '.join(REASONS)}")
    if record.decision != REJECT and record.reason:
        raise BadData(f"{where}: only a rejection has a reason")
    if record.reason == "other" and not record.note.strip():
        raise BadData(f"{where}: reason 'other' needs a note")
    if len(record.note) > MAX_NOTE:
        raise BadData(f"{where}: note longer than {MAX_NOTE} characters")
    return record


def to_line(record: ReviewRecord) -> str:
    return json.dumps(asdict(record), sort_keys=True)


def append_review(root: str | Path, record: ReviewRecord) -> None:
    """The one writer: append a decision to the dataset's log, durably (see the module doc)."""
    data = (to_line(record) + "\n").encode()
    fd = os.open(Path(root) / REVIEW_LOG, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a killed writer's partial line
            tail = os.pread(fd, min(size, 1 << 16), max(size - (1 << 16), 0))
            os.ftruncate(fd, size - len(tail) + tail.rfind(b"\n") + 1)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read_reviews(root: str | Path) -> list[ReviewRecord]:
    """Every committed decision in log order; none when the log does not exist yet."""
    path = Path(root) / REVIEW_LOG
    if not path.exists():
        return []
    return [from_json(data, where) for where, data in read_jsonl(path, committed_only=True)]


def standing(records: Iterable[ReviewRecord]) -> dict[str, dict[str, ReviewRecord]]:
    """pair id -> reviewer -> that reviewer's standing decision (accept or reject)."""
    stacks: dict[tuple[str, str], list[ReviewRecord]] = {}
    for r in records:
        stack = stacks.setdefault((r.pair, r.reviewer), [])
        if r.decision == UNDO:
            if stack:
                stack.pop()
        else:
            stack.append(r)
    out: dict[str, dict[str, ReviewRecord]] = {}
    for (pair, reviewer), stack in stacks.items():
        if stack:
            out.setdefault(pair, {})[reviewer] = stack[-1]
    return out


def pair_state(decisions: dict[str, ReviewRecord] | None) -> str:
    """accepted / rejected when every reviewer who decided agrees, disputed when not."""
    kinds = {r.decision for r in (decisions or {}).values()}
    if not kinds:
        return UNREVIEWED
    if len(kinds) > 1:
        return DISPUTED
    return HUMAN_ACCEPTED if kinds == {ACCEPT} else HUMAN_REJECTED


def human_accepted(root: str | Path) -> set[str]:
    """Ids of the pairs people accepted (state "accepted") in the dataset at `root`."""
    return {
        pair
        for pair, decisions in standing(read_reviews(root)).items()
        if pair_state(decisions) == HUMAN_ACCEPTED
    }
