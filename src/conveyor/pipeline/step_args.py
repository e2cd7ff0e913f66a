"""A step type's ``with:`` arguments, declared once as a pydantic model and checked twice.

Each built-in step type names the model of its arguments (``@step_type(..., args=Model)``):
the keys it takes, their types and their defaults, in one place.

* ``conveyor pipeline validate`` (and every run, before any step starts) refuses an unknown key,
  naming it and the keys the type takes, and a literal value of the wrong type; a value that is
  a ``${{ }}`` expression is only known at run time, so its type is checked then;
* when the step runs, its resolved ``with:`` is validated into the model: the step function reads
  ``ctx.options.<key>``, typed, with its default when unset.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

EXPRESSION = "${{"


def _flag(value: Any) -> Any:
    """true/false as YAML booleans or as the strings an expression yields; "" is unset."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "":
            return None
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
    return value


#: a yes/no argument that may be left unset (None): tls_verify, ...
Flag = Annotated[bool | None, BeforeValidator(_flag)]
#: a yes/no argument with a default
Switch = Annotated[bool, BeforeValidator(_flag)]
#: ``sign:`` of the steps that sign: true ($CONVEYOR_SIGNING_KEY), false (never) or a key file
SignWith = Annotated[bool | str | None, BeforeValidator(_flag)]


class StepArgs(BaseModel):
    """The base of every step type's arguments: unknown keys are an error, never ignored."""

    model_config = ConfigDict(extra="forbid")


#: a step type's own arguments: a model on StepArgs
Args = TypeVar("Args", bound=StepArgs)


def _problem(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"


def static_problems(model: type[StepArgs], given: dict[str, Any]) -> list[str]:
    """What is wrong with a step's ``with:`` before it runs: unknown keys, missing required ones,
    literal values of the wrong type (expressions are left for run time)."""
    fields = model.model_fields
    problems = []
    unknown = sorted(set(given) - set(fields))
    if unknown:
        problems.append(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (it takes: {', '.join(fields)})"
        )
    missing = [name for name, field in fields.items() if field.is_required() and name not in given]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    for name, value in given.items():
        if name not in fields or _has_expression(value):
            continue
        try:
            TypeAdapter(fields[name].rebuild_annotation()).validate_python(value)  # the type with its validators
        except ValidationError as exc:
            problems.append(f"{name}: {exc.errors()[0]['msg']} (got {value!r})")
    return problems


def parse_args(model: type[Args], given: dict[str, Any]) -> Args:
    """The resolved ``with:`` as ``model``; ValueError naming each problem."""
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(e) for e in exc.errors(include_url=False))) from None


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return EXPRESSION in value
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False
