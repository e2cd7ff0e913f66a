"""The JSON type name of a Python value, as JSON Schema spells it (for messages and recorded schemas)."""

from __future__ import annotations

from typing import Any

JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)
