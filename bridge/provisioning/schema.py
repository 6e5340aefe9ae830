"""The part of JSON schema the API's operations use, checked on what a caller sends (query and
path parameters, the body) before a handler sees it: types, required properties, no unknown
ones, lengths, patterns, bounds and enums. What fails is a ``ValueError`` naming the place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ERROR = {
    "type": "object",
    "required": ["errcode", "error"],
    "properties": {"errcode": {"type": "string"}, "error": {"type": "string"}},
}
"""Every refusal's body."""


def check(value: Any, schema: Mapping[str, Any], where: str) -> Any:
    """``value`` if it matches ``schema``, else ``ValueError``."""
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{where} must be one of {', '.join(map(str, schema['enum']))}")
    kind = schema.get("type")
    if kind == "object":
        return _object(value, schema, where)
    if kind == "array":
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list")
        if len(value) > schema.get("maxItems", 1000):
            raise ValueError(f"{where} has too many items")
        return [
            check(item, schema.get("items", {}), f"{where}[{n}]") for n, item in enumerate(value)
        ]
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string")
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10_000):
            raise ValueError(f"{where} has a wrong length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise ValueError(f"{where} is malformed")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer")
        if not schema.get("minimum", -(2**53)) <= value <= schema.get("maximum", 2**53):
            raise ValueError(f"{where} is out of range")
        return value
    if kind == "boolean" and not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false")
    return value


def _object(value: Any, schema: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise ValueError(f"{where}.{name} is missing")
    out = {}
    for name, item in value.items():
        if name not in properties:
            raise ValueError(f"{where}.{name} is unknown")
        out[name] = check(item, properties[name], f"{where}.{name}")
    return out


def parameter(raw: str, schema: Mapping[str, Any], where: str) -> Any:
    """A query or path parameter (a string on the wire) converted and checked."""
    if schema.get("type") == "integer":
        if not re.fullmatch(r"-?[0-9]{1,16}", raw):
            raise ValueError(f"{where} must be an integer")
        return check(int(raw), schema, where)
    return check(raw, schema, where)
