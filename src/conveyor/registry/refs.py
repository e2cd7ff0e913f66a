"""Model references: ``name:version``, ``name@alias`` and ``name`` (the latest version)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.errors import ClientError, InvalidInput

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
# a file path in a new version: what every filesystem and URL takes as it is (the OpenAPI document's pattern)
FILE_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}"
FILE_PATH_RE = re.compile(rf"^{FILE_SEGMENT}(/{FILE_SEGMENT})*$")
MAX_FILE_PATH = 1024
FILE_PATH_RULE = (
    "a file path in a version is names of letters, digits, '_', '-' and '.' joined by '/', none starting "
    f"with '.', each at most 255 characters and {MAX_FILE_PATH} in all"
)


def safe_file_name(name: str) -> str:
    """``name`` as a file name the path rule takes: other characters as '_', no leading '.', 255 at most.

    For the names Conveyor picks itself from a user's file (a converted model keeps the framework's
    file under ``original/``): ``my model.joblib`` is kept as ``my_model.joblib``, not refused.
    """
    kept = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "file"
    if len(kept) > 255:
        stem, dot, suffix = kept.rpartition(".")
        kept = (stem[: 254 - len(suffix)] + dot + suffix) if dot and len(suffix) < 32 else kept[:255]
    return kept


MAX_VERSION = 2**63 - 1  # what a database's BIGINT holds (SQLite's INTEGER, PostgreSQL's bigint)
VERSION_RULE = f"versions are whole numbers from 1 to {MAX_VERSION}"


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


def check_version(version: int) -> int:
    """Version numbers are 1, 2, 3, ... up to what the database holds."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"invalid version {version!r}: {VERSION_RULE}")
    return version


def parse_version(text: str, where: str = "") -> int:
    """A version number written as text (a reference, a URL path, an option)."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_VERSION:
        raise InvalidInput(f"invalid version {text!r}{where}: {VERSION_RULE}")
    return int(text)


def check_file_name(path: str) -> str:
    """A new version's file path (older versions keep theirs: downloads check only that they stay inside)."""
    if not isinstance(path, str) or len(path) > MAX_FILE_PATH or not FILE_PATH_RE.match(path):
        shown = path if not isinstance(path, str) or len(path) <= 80 else path[:60] + f"... ({len(path)} characters)"
        raise InvalidInput(f"invalid file path {shown!r}: {FILE_PATH_RULE}")
    return path


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
        return ModelRef(check_name(name), version=parse_version(version, f" in {text!r}"))
    return ModelRef(check_name(text))


def looks_like_ref(text: str) -> bool:
    """True for strings that can only be registry references (not paths)."""
    try:
        parse_ref(text)
    except ClientError:
        return False
    return True
