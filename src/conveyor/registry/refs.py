"""Model references: ``name:version``, ``name@alias`` and ``name`` (the latest version)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.errors import ClientError, InvalidInput

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


def check_name(name: str, what: str = "model name") -> str:
    """Names become URL path segments and cache folders: no traversal, no control characters."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidInput(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'",
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias) or alias == "latest":
        raise InvalidInput(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '_' or '-', starting with a letter "
            "('latest' is reserved)",
        )
    return alias


def check_tag_key(key: str) -> str:
    if not isinstance(key, str) or not TAG_KEY_RE.match(key):
        raise InvalidInput(f"invalid tag or property key {key!r}")
    return key


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference; exactly one of ``version`` and ``alias`` may be set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str) -> ModelRef:
    """Parse ``name:3``, ``name@production`` or ``name``."""
    if not isinstance(text, str) or not text:
        raise InvalidInput("empty model reference: use name, name:version or name@alias")
    if "@" in text:
        name, alias = text.split("@", 1)
        return ModelRef(check_name(name), alias=check_alias(alias))
    if ":" in text:
        name, version = text.rsplit(":", 1)
        if not version.isdigit() or int(version) < 1:
            raise InvalidInput(f"invalid version {version!r} in {text!r}: versions are 1, 2, 3, ...")
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(text))


def looks_like_ref(text: str) -> bool:
    """True for strings that can only be registry references (not paths)."""
    try:
        parse_ref(text)
    except ClientError:
        return False
    return True
