"""Enum values as users read them: the value's proto name without its enum's prefix, in lower
case.

The .proto enum values carry their enum's name as a prefix (RATING_SAFE), as buf's STANDARD lint
asks, so values of different enums never collide in languages that scope them like C++. That is
what gRPC stubs and proto-JSON tools show. Everything else a user reads (HTTP JSON, the SDK, the
CLI, datasets) says the one word: "safe", "to_unsafe", "add" (`user_value`); the plain name
(SAFE) is what tests/test_proto_contract.py checks never changes.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

# Word boundaries inside a CamelCase name: "EditDirection" -> EDIT_DIRECTION, "HTTPCode" ->
# HTTP_CODE (buf's own rule for the expected prefix).
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def enum_prefix(enum_name: str) -> str:
    """The prefix buf's ENUM_VALUE_PREFIX rule asks of the values of `enum_name`."""
    return _WORD_BOUNDARY.sub("_", enum_name).upper() + "_"


def plain_name(enum_name: str, value_name: str) -> str:
    """`value_name` without its enum's prefix: plain_name("Rating", "RATING_SAFE") == "SAFE"."""
    return value_name.removeprefix(enum_prefix(enum_name))


def plain_value(enum: EnumTypeWrapper, number: int) -> str:
    """The plain name of a value of a generated enum: plain_value(Rating, 1) == "SAFE"."""
    return plain_name(enum.DESCRIPTOR.name, enum.Name(number))


def user_value(enum: EnumTypeWrapper, number: int) -> str:
    """What users read for a value of a generated enum: user_value(Rating, 1) == "safe"."""
    return plain_value(enum, number).lower()


def plain_json(message: Descriptor, data: dict[str, Any]) -> dict[str, Any]:
    """`data`, the JSON form (json_format.MessageToDict with proto field names) of a `message`,
    with every enum value, at any depth, as users read it ("safe"). Changes `data` in place."""
    for field in message.fields:
        if field.name in data:
            data[field.name] = _plain_field(field, data[field.name])
    return data


def _plain_field(field: FieldDescriptor, value: Any) -> Any:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        value_field = entry.fields_by_name["value"]
        return {k: _plain_item(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_plain_item(field, v) for v in value]
    return _plain_item(field, value)


def _plain_item(field: FieldDescriptor, value: Any) -> Any:
    # A value the reader does not know comes as its number (str only for known names); a
    # message with a special JSON form (well-known types) is not a dict: both pass unchanged.
    if field.enum_type is not None and isinstance(value, str):
        return plain_name(field.enum_type.name, value).lower()
    if field.message_type is not None and isinstance(value, dict):
        return plain_json(field.message_type, value)
    return value
