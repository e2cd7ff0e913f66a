"""A command's options from a process's settings model: one Typer option per field, typed once.

``@with_settings(ServeSettings)`` gives ``conveyor serve`` an option per field (``--kebab-name``,
its type, default, bounds and help, the ``CONVEYOR_*`` variable shown), and the command receives
them as ``**settings`` (and its ``typer.Context``); :func:`given_on_command_line` keeps those the user typed, so
:meth:`~conveyor.settings.ProcessSettings.load` can take the rest from the variables,
conveyor.yaml and the defaults, in that order.

``@with_spec_options(RolloutSettings, "rollout")`` does the same for a spec that lives in
conveyor.yaml (``conveyor rollout start``'s): its options default to None, meaning the section's
value, else the field's default.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel

from conveyor.setting_fields import SettingField, setting_fields

if TYPE_CHECKING:
    from conveyor.settings import ProcessSettings

Command = TypeVar("Command", bound=Callable[..., None])


def greater_than(bound: float) -> Callable[[Any], Any]:
    """A Typer callback refusing values at or below ``bound`` (click's ranges only have >=)."""

    def check(value: Any) -> Any:
        if value is not None and value <= bound:
            raise typer.BadParameter(f"must be greater than {bound:g}")
        return value

    return check


def _parameter(field: SettingField, variables: bool = True) -> inspect.Parameter:
    if field.argument:
        annotation: Any = Annotated[field.kind, typer.Argument(help=field.help, show_default=False)]
        return inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
    default = field.default
    declared = f"{field.option}/--no-{field.option[2:]}" if field.kind is bool else field.option
    option = typer.Option(
        declared,
        help=field.help,
        envvar=field.env if variables else None,
        show_envvar=variables,
        show_default=field.show_default,
        min=field.ge,
        max=field.le,
        callback=greater_than(field.gt) if field.gt is not None else None,
        case_sensitive=False,
    )
    kind: Any = Literal[field.choices] if field.choices else field.kind
    if field.repeatable:
        kind, default = list[field.kind] | None, None  # type: ignore[name-defined]
    elif field.optional:
        kind = kind | None
    return inspect.Parameter(
        field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def with_settings(settings: type[ProcessSettings]) -> Callable[[Command], Command]:
    """Give the decorated command one option (or argument) per field of ``settings``, as ``**settings``.

    Arguments come first, then the command's own parameters, then the settings' options."""

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        derived = [_parameter(f) for f in setting_fields(settings)]
        arguments = [p for p in derived if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        options = [p for p in derived if p.kind is inspect.Parameter.KEYWORD_ONLY]
        command.__signature__ = signature.replace(parameters=[*arguments, *own, *options])  # type: ignore[attr-defined]
        return command

    return decorate


def with_model_options(model: type[BaseModel]) -> Callable[[Command], Command]:
    """Give the decorated command one option per field of a plain model (no variables, no conveyor.yaml
    section: ``conveyor monitor``'s thresholds), as ``**options`` after its own parameters."""

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        derived = [_parameter(f, variables=False) for f in setting_fields(model)]
        command.__signature__ = signature.replace(parameters=[*own, *derived])  # type: ignore[attr-defined]
        return command

    return decorate


def given_on_command_line(context: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The settings the user typed (the rest come from variables, conveyor.yaml or the defaults)."""
    return {name: value for name, value in values.items() if _source(context, name) == "COMMANDLINE"}


def _source(context: typer.Context, name: str) -> str | None:
    source = context.get_parameter_source(name)
    return None if source is None else source.name


def spec_option_names(spec: type[BaseModel]) -> list[str]:
    """The fields of a conveyor.yaml section's model that are options: its scalar ones (a mapping or a
    nested model, like a rollout's thresholds or supply-chain policy, has options of its own)."""
    names = []
    for name, info in spec.model_fields.items():
        annotation = info.annotation
        structured = typing.get_origin(annotation) is dict or (
            isinstance(annotation, type) and issubclass(annotation, BaseModel)
        )
        if not structured:
            names.append(name)
    return names


def with_spec_options(
    spec: type[BaseModel], section: str, only: tuple[str, ...] | None = None
) -> Callable[[Command], Command]:
    """Give the command one option per scalar field of ``spec`` (a conveyor.yaml section's model), as
    keyword arguments that default to None: the section's value, else the field's default."""

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for name in spec_option_names(spec):
            if only is not None and name not in only:
                continue
            info = spec.model_fields[name]
            help_text = info.description or ""
            default = info.get_default(call_default_factory=True)
            if isinstance(default, list):
                default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
            written = re.search(r" ?\[default: ([^\]]+)\]", help_text)
            if written:
                help_text = help_text.replace(written.group(0), "")
            said = written.group(1) if written else default
            where = f"conveyor.yaml's {section}.{name}"
            shown = f"{where}, else {said}" if said is not None else where
            help_text = f"{help_text.rstrip('.')} [default: {shown}]."
            choices = _literal_choices(info.annotation)
            kind: Any = Literal[choices] if choices else str  # a step list or a duration is parsed by the spec
            option = typer.Option(f"--{name.replace('_', '-')}", help=help_text, case_sensitive=False)
            params.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind | None, option]
                )
            )
        var_keyword = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
        command.__signature__ = signature.replace(parameters=[*params, *var_keyword])  # type: ignore[attr-defined]
        return command

    return decorate


def _literal_choices(annotation: Any) -> tuple[str, ...]:
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is Literal:
            return tuple(str(c) for c in typing.get_args(candidate))
    return ()
