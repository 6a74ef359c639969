"""Policy and Category types, loading and validation of policy YAML (or JSON).

A policy is hostile input when a request carries it: its size, its categories and its nesting
are bounded, and every check on it is cheap (a request listing thousands of codes once stalled
the judge for seconds).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.v1 import common_pb2

_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
MAX_POLICY_BYTES = 256 * 1024
MAX_CATEGORIES = 256
# A policy document is four levels deep (policy, categories, category, should_not); deeper
# nesting is an attack on the parser (a RecursionError, thousands of lines long).
MAX_NESTING = 8
_NAMED = 10  # codes an error message names before "and N more"
_POLICY_KEYS = {"name", "version", "categories"}
_CATEGORY_KEYS = {"code", "name", "should_not", "can"}


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    should_not: tuple[str, ...] = ()
    can: tuple[str, ...] = ()

    def to_proto(self) -> common_pb2.Category:
        return common_pb2.Category(
            code=self.code, name=self.name, should_not=self.should_not, can=self.can
        )

    @classmethod
    def from_proto(cls, msg: common_pb2.Category) -> Category:
        return cls(msg.code, msg.name, tuple(msg.should_not), tuple(msg.can))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "should_not": list(self.should_not),
            "can": list(self.can),
        }


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    categories: tuple[Category, ...]

    @cached_property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.categories)

    @cached_property
    def _by_code(self) -> dict[str, Category]:
        return {c.code: c for c in self.categories}

    def category(self, code: str) -> Category:
        if code in self._by_code:
            return self._by_code[code]
        raise InvalidInput(f"unknown category {code!r}; policy {self.name!r} has: {self._named()}")

    def check_codes(self, codes: Iterable[str]) -> tuple[str, ...]:
        """Return `codes` as a tuple, raising InvalidInput naming any unknown or repeated one.
        A list longer than the policy cannot be valid and is refused before it is read."""
        codes = tuple(codes)
        if len(codes) > len(self.categories):
            raise InvalidInput(
                f"{len(codes)} categories listed; policy {self.name!r} has "
                f"{len(self.categories)}, each may be listed once"
            )
        unknown = [c for c in codes if c not in self._by_code]
        if unknown:
            raise InvalidInput(
                f"unknown category {_listed(unknown)}; policy {self.name!r} has: {self._named()}"
            )
        if len(set(codes)) != len(codes):
            twice = [c for c, n in Counter(codes).items() if n > 1]
            raise InvalidInput(f"category listed twice: {_listed(twice)}")
        return codes

    def _named(self) -> str:
        return _listed(self.codes, quote=False)

    def to_dict(self) -> dict[str, Any]:
        """The policy as its YAML document's data (policy_from_dict reads it back)."""
        return {
            "name": self.name,
            "version": self.version,
            "categories": [c.to_dict() for c in self.categories],
        }

    def to_proto(self) -> common_pb2.Policy:
        return common_pb2.Policy(
            name=self.name,
            version=self.version,
            categories=[c.to_proto() for c in self.categories],
        )


def _listed(items: Iterable[str], quote: bool = True) -> str:
    """At most _NAMED items for a message, then how many more."""
    items = list(items)
    shown = ", ".join(repr(i) if quote else i for i in items[:_NAMED])
    return shown + (f" and {len(items) - _NAMED} more" if len(items) > _NAMED else "")


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (policies never need them; refusing them closes
    the billion-laughs expansion attack) and nesting deeper than MAX_NESTING (the composer
    recurses per level)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise InvalidInput(
                f"policy YAML uses an alias (*{event.anchor}) at line "
                f"{event.start_mark.line + 1}; aliases are not allowed in policies"
            )
        if self._depth >= MAX_NESTING:
            line = self.peek_event().start_mark.line + 1
            raise InvalidInput(f"policy nests deeper than {MAX_NESTING} levels (line {line})")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput(f"{where} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidInput(
            f"{where} has unknown field(s) {', '.join(map(str, extra))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _category(data: Any, index: int) -> Category:
    where = f"categories[{index}]"
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} must be a mapping with code, name, should_not, can")
    _unknown_keys(data, _CATEGORY_KEYS, where)
    for key in ("code", "name", "should_not"):
        if key not in data:
            raise InvalidInput(f"{where} is missing required field {key!r}")
    code, name = data["code"], data["name"]
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise InvalidInput(
            f"{where}.code {code!r} must be 1-32 letters, digits, '_' or '-', starting "
            "with a letter"
        )
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{where}.name must be a non-empty string")
    return Category(
        code=code,
        name=name.strip(),
        should_not=_strings(data["should_not"], f"{where}.should_not"),
        can=_strings(data.get("can", []), f"{where}.can") if data.get("can") else (),
    )


def parse_policy(text: str | bytes, source: str = "<policy>") -> Policy:
    """Parse and validate a policy document, YAML or JSON (a document starting with `{`);
    every problem raises InvalidInput naming it."""
    if len(text) > MAX_POLICY_BYTES:
        raise PayloadTooLarge(
            f"{source}: policy is {len(text)} bytes, over the limit of {MAX_POLICY_BYTES}"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    try:
        if text.lstrip().startswith("{"):
            data = _json_document(text)
        else:
            data = yaml.load(text, Loader=_NoAliasLoader)
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {exc}") from None
    return policy_from_dict(data, source)


def _json_document(text: str) -> Any:
    """JSON parsed as JSON: YAML 1.1 reads most JSON but not all of it (a tab, an escaped
    slash), and the docs promise JSON policies."""
    if _json_depth(text) > MAX_NESTING:
        raise InvalidInput(f"policy nests deeper than {MAX_NESTING} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc}") from None


def _json_depth(text: str) -> int:
    """The deepest bracket nesting outside strings, found without recursing."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def policy_from_dict(data: Any, source: str = "<policy>") -> Policy:
    """Validate an already-parsed policy mapping (e.g. one embedded in a model's sidecar)."""
    try:
        return _policy(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc.message}") from None


def _policy(data: Any) -> Policy:
    if not isinstance(data, dict):
        raise InvalidInput("a policy must be a mapping with name, version, categories")
    _unknown_keys(data, _POLICY_KEYS, "policy")
    name, version = data.get("name"), data.get("version", "1")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("policy.name must be a non-empty string")
    if not isinstance(version, str | int):
        raise InvalidInput("policy.version must be a string")
    raw = data.get("categories")
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("policy.categories must be a non-empty list")
    if len(raw) > MAX_CATEGORIES:
        raise PayloadTooLarge(
            f"policy has {len(raw)} categories, over the limit of {MAX_CATEGORIES}"
        )
    categories = tuple(_category(c, i) for i, c in enumerate(raw))
    seen: set[str] = set()
    for c in categories:
        if c.code in seen:
            raise InvalidInput(f"category code {c.code!r} appears twice")
        seen.add(c.code)
    return Policy(name=name.strip(), version=str(version), categories=categories)


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read policy file {path}: {exc.strerror}") from None
    return parse_policy(text, source=str(path))


@cache
def default_policy() -> Policy:
    """The built-in LlavaGuard-style taxonomy O1..O9."""
    ref = resources.files("safetypairs.contract.policy").joinpath("llavaguard_v1.yaml")
    return parse_policy(ref.read_bytes(), source="llavaguard_v1.yaml")
