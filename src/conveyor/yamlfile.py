"""Load a YAML file into a pydantic model, with errors that name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from conveyor.errors import InvalidInput, NotFound

Model = TypeVar("Model", bound=BaseModel)


def line_of(node: yaml.Node, path: tuple[Any, ...]) -> int:
    """The line (1-based) of the YAML node at a pydantic error location (aliases like with_ -> with)."""
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            wanted = str(part).rstrip("_")
            for key, value in node.value:
                if key.value == wanted or key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_yaml_model(path: Path, model: type[Model], missing: str) -> Model:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise NotFound(f"{path}: {missing}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise InvalidInput(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping at the top")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors()[:5]:
            loc = tuple(p for p in err["loc"] if not str(p).startswith("function-after"))
            line = line_of(node, loc) if node is not None else 1
            field = ".".join(str(p).rstrip("_") for p in loc) or "file"
            messages.append(f"{path}:{line}: {field}: {err['msg'].removeprefix('Value error, ')}")
        raise InvalidInput("\n".join(messages)) from None
