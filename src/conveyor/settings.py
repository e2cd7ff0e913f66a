"""Settings as data: each long-running process reads one typed model, and its front ends derive from it.

A process's settings (``conveyor serve``, ``conveyor router``, ``conveyor registry serve``,
``conveyor ui``) are one :class:`ProcessSettings` subclass, a pydantic-settings model whose
fields are the only list of that process's knobs (MLServer's ``settings.py`` is the model for
this).  :func:`setting_fields` describes each field the way a front end needs it (option name,
``CONVEYOR_*`` variable, conveyor.yaml key, help, default, bounds); the Typer options
(``cli/settings_options.py``) and the argparse options of the image's light entry point
(:func:`add_arguments`) are built from that description, never typed a second time.

Where a value comes from, strongest first: the command line, the ``CONVEYOR_<PROCESS>_<FIELD>``
variable, the process's section of conveyor.yaml, the field's default.  Imports only pydantic
and pydantic-settings, so the served image can use it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from conveyor.errors import InvalidInput
from conveyor.setting_fields import SettingField, setting_fields

__all__ = [
    "LogLevel",
    "NoDecode",
    "ProcessSettings",
    "ReadTimeoutSettings",
    "SettingField",
    "add_arguments",
    "setting_fields",
    "split_list",
]

#: a server's log level (uvicorn's names); given in any case
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
_PROJECT: ContextVar[Path | None] = ContextVar("conveyor_settings_project", default=None)


def split_list(value: Any) -> Any:
    """A repeatable setting given as one string (a variable): ``text,email`` -> ["text", "email"]."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _ProjectSection(PydanticBaseSettingsSource):
    """The process's section of conveyor.yaml (``serve:``, ``router:`` ...), when the process reads one."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the whole section at once

    def __call__(self) -> dict[str, Any]:
        path = _PROJECT.get()
        section_name = getattr(self.settings_cls, "yaml_section", None)
        if path is None or section_name is None or not path.is_file():
            return {}
        import yaml  # only where a project file is read (the command's start-up stays light)

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{path}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
        section = data.get(section_name) if isinstance(data, dict) else None
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise InvalidInput(f"{path}: {section_name}: expected a mapping of settings")
        assert issubclass(self.settings_cls, ProcessSettings)  # the settings that install this source
        known = {f.name for f in setting_fields(self.settings_cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise InvalidInput(
                f"{path}: {section_name}: unknown setting {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return dict(section)


class ReadTimeoutSettings(BaseModel):
    """How long a server waits on a client's request: the same two settings in every server (``http_server.py``)."""

    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client may take to send a request's headers (then 408, and closed)."
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a request body may send nothing while awaited (then the connection closes)."
    )


class ProcessSettings(BaseSettings):
    """A long-running process's settings; subclasses set ``env_prefix`` and ``yaml_section``."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    #: the conveyor.yaml key of this process's section (None: the process reads no conveyor.yaml)
    yaml_section: ClassVar[str | None] = None

    @field_validator("log_level", mode="before", check_fields=False)
    @classmethod
    def _lower_case_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ProjectSection(settings_cls)

    @classmethod
    def load(cls, given: Mapping[str, Any] | None = None, project: Path | None = None) -> Self:
        """The settings from ``given`` (the command line), the variables, ``project``'s section, the defaults.

        A bad value raises :class:`~conveyor.errors.InvalidInput` naming the setting's option and variable.
        """
        token = _PROJECT.set(project)
        try:
            return cls(**dict(given or {}))
        except ValidationError as exc:
            raise InvalidInput(_explain(cls, exc)) from None
        except SettingsError as exc:
            raise InvalidInput(str(exc)) from None
        finally:
            _PROJECT.reset(token)


def _explain(cls: type[ProcessSettings], exc: ValidationError) -> str:
    """One line: each bad value with its option, its variable and (where read) its conveyor.yaml key."""
    fields = {f.name: f for f in setting_fields(cls)}
    problems = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "settings"
        field = fields.get(name)
        where = name
        if field is not None:
            key = f", {cls.yaml_section}.{name}" if cls.yaml_section else ""
            where = f"{field.option} (${field.env}{key})"
        problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def _default_text(field: SettingField) -> str:
    if not field.show_default or field.default in (None, [], ()):
        return ""
    value = field.default
    if field.kind is bool:
        value = field.option if value else f"--no-{field.option.removeprefix('--')}"
    return f" [default: {value}]"


def add_arguments(parser: argparse.ArgumentParser, cls: type[ProcessSettings]) -> None:
    """Add one argparse option (or positional argument) per field of ``cls``.

    Options left out of the command line are absent from the parsed namespace (``SUPPRESS``), so
    :meth:`ProcessSettings.load` takes them from the variables or the defaults.  Bounds are checked
    by the model, which names the option.
    """
    for field in setting_fields(cls):
        help_text = f"{field.help}{_default_text(field)} (${field.env})".replace("%", "%%")
        if field.argument:
            parser.add_argument(field.name, help=help_text, default=argparse.SUPPRESS)
            continue
        common: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text}
        if field.kind is bool:
            parser.add_argument(field.option, action=argparse.BooleanOptionalAction, **common)
        elif field.repeatable:
            parser.add_argument(field.option, action="append", type=field.kind, metavar="VALUE", **common)
        else:
            parser.add_argument(
                field.option,
                type=field.kind,
                choices=field.choices or None,
                metavar=field.name.upper() if not field.choices else None,
                **common,
            )
