"""The inputs a recorded contract's golden examples are made from, read from a user's file.

``conveyor init --sample`` and ``conveyor verify --write-contract --sample`` take the cases a
team already trusts: texts (a ``.txt`` file, one per line, or a JSON list), rows (CSV with a
header, typed by the served model's features, an empty cell a missing value as pandas writes NaN,
or JSON records / pandas' split shape) or
images (a PNG/JPEG file, or a folder of them, sent base64-encoded as ``/predict`` takes them).
"""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_EXAMPLES = 20


def read_examples(
    path: Path, features: list[dict[str, Any]] | None = None, limit: int | None = MAX_EXAMPLES
) -> list[Any]:
    """At most ``limit`` inputs from ``path`` (None: all); ``features`` type a CSV's cells."""
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InvalidInput(f"{path}: no .png or .jpg images in this folder")
        return [_image(p) for p in images[:limit]]
    if not path.is_file():
        raise InvalidInput(f"{path}: no such sample file")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [_image(path)]
    if suffix == ".txt":
        examples: list[Any] = [line for line in path.read_text().splitlines() if line.strip()]
    elif suffix == ".csv":
        examples = csv_records(path, features or [])
    elif suffix == ".json":
        examples = _json_examples(path)
    else:
        raise InvalidInput(f"{path.name}: a sample is .txt (texts), .csv or .json (rows), or images")
    if not examples:
        raise InvalidInput(f"{path.name}: the sample holds no examples")
    return examples[:limit]


def _image(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _json_examples(path: Path) -> list[Any]:
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidInput(f"{path.name}: not JSON ({exc})") from None
    if isinstance(raw, dict) and {"columns", "data"} <= set(raw):
        return [dict(zip(raw["columns"], row, strict=False)) for row in raw["data"]]
    if isinstance(raw, list):
        return raw
    raise InvalidInput(f"{path.name}: expected a JSON list (texts or records) or {{'columns': [...], 'data': [...]}}")


def csv_records(path: Path, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A CSV's rows as the JSON records a client sends: cells typed by ``features`` (their v2
    metadata or model.yaml form), an empty cell null (pandas' ``to_csv`` writes NaN as one)."""
    types = {f["name"]: f.get("type", "number") for f in features}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{column: _typed(column, cell, types.get(column), path) for column, cell in row.items()} for row in rows]


def _typed(column: str, cell: str, kind: str | None, path: Path) -> Any:
    if cell == "":
        return None  # a missing value: the server takes it where the model does, else names the column
    try:
        if kind == "number":
            return float(cell)
        if kind == "integer":
            return int(cell)
        if kind == "boolean":
            return cell.strip().lower() in ("1", "true", "yes")
    except ValueError:
        raise InvalidInput(f"{path.name}: column {column!r} holds {cell!r}, not a {kind}") from None
    return cell
