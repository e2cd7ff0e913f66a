"""Settings described for front ends: each field of a settings model as an option, a variable, a default.

:func:`setting_fields` describes each field of a model the way a front end needs it (option name,
``CONVEYOR_*`` variable, conveyor.yaml key, help, default, bounds): ``conveyor.settings`` builds the
processes' options from it, and ``cli/settings_options.py`` the options of a plain model too
(``conveyor monitor``'s thresholds).  Apart from ``conveyor/settings.py`` because that one imports
pydantic-settings (and asyncio with it): a command with a plain model's options starts without them.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel


@dataclass(frozen=True)
class SettingField:
    """One setting as the front ends see it."""

    name: str  # the Python name, also the conveyor.yaml key
    option: str  # --kebab-name (an argument's metavar for a positional one)
    env: str  # the environment variable
    help: str
    kind: type  # bool, int, float or str (a list's item type for a repeatable one)
    default: Any
    required: bool = False
    optional: bool = False  # None is a value (unset)
    repeatable: bool = False
    argument: bool = False  # positional on the command line
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    show_default: bool = True  # False where the help says what the default is


def _unwrap(annotation: Any) -> tuple[Any, bool, bool]:
    """(the scalar type, optional, repeatable) of a field's annotation."""
    optional = repeatable = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        optional = True
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else str
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (list, tuple):
        repeatable = True
        annotation = typing.get_args(annotation)[0]
    return annotation, optional, repeatable


def setting_fields(cls: type[BaseModel]) -> list[SettingField]:
    """Every field of ``cls`` with its option, variable, help, default and bounds.

    In declaration order, the fields of shared groups (a mixin that is no ProcessSettings, like the
    payload log's) after the process's own."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    described = []
    for name, info in sorted(cls.model_fields.items(), key=lambda item: _from_a_group(cls, item[0])):
        kind, optional, repeatable = _unwrap(info.annotation)
        choices: tuple[str, ...] = ()
        if typing.get_origin(kind) is Literal:
            choices, kind = tuple(str(c) for c in typing.get_args(kind)), str
        if kind is Path or not isinstance(kind, type):
            kind = str
        bounds: dict[str, float] = {}
        for item in info.metadata:
            for key in ("ge", "le", "gt"):
                if isinstance(item, getattr(annotated_types, key.capitalize())):
                    bounds[key] = getattr(item, key)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        described.append(
            SettingField(
                name=name,
                option=name.upper() if extra.get("argument") else f"--{name.replace('_', '-')}",
                env=alias or f"{prefix}{name.upper()}",
                help=info.description or "",
                kind=kind,
                default=default,
                required=info.is_required(),
                optional=optional,
                repeatable=repeatable,
                argument=bool(extra.get("argument")),
                choices=choices,
                show_default=bool(extra.get("show_default", True)),
                **bounds,
            )
        )
    return described


def _from_a_group(cls: type[BaseModel], name: str) -> bool:
    declared_in = next(base for base in cls.__mro__ if name in inspect.get_annotations(base))
    settings = sys.modules.get("conveyor.settings")  # not imported: no class is a ProcessSettings
    return settings is None or not issubclass(declared_in, settings.ProcessSettings)
