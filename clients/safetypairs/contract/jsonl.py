"""The one JSONL reader: every data file of the project that holds one JSON object a line
(pair manifests, labelled training data, evaluation tables) is read here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetypairs.contract.errors import InvalidInput


class BadData(InvalidInput):
    """A data file, or one record in it, is unusable; the message names the file and line."""


def read_jsonl(
    path: str | Path, committed_only: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for every non-blank line; `where` names the file and line for messages.
    `committed_only` skips a last line without its newline: a writer may be appending it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadData(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadData(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    if committed_only:
        text = text[: text.rfind("\n") + 1]
    yield from parse_jsonl(text, str(path))


def parse_jsonl(text: str, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """As `read_jsonl`, for text a caller read itself (the pair dataset reads its manifests
    without following symbolic links); `name` is the file's name in messages."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name} line {n}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise BadData(f"{where}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadData(f"{where}: must be a JSON object, not {type(data).__name__}")
        yield where, data
