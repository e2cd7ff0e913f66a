"""The table of step types a pipeline's ``uses:`` may name: one module per type, found by itself.

Every module in :mod:`conveyor.pipeline.steps` registers its type with :func:`step_type`; the
spec validates ``uses:`` against this table, the executor calls the type's function, and the
GitHub workflow generator reads the type's CI needs from it.  Adding a step type is one new
module in that package (plus its test): nothing else lists the types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, overload

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import Args, StepArgs

if TYPE_CHECKING:
    from conveyor.pipeline.spec import Step

#: a step type's function: its context (typed by its arguments' model) to its outputs
StepFunction = Callable[[StepContext[Args]], dict[str, Any] | None]


@dataclass(frozen=True)
class StepType(Generic[Args]):
    name: str
    run: StepFunction[Args]
    #: the model of its ``with:`` arguments (``pipeline.step_args``): keys, types, defaults
    args: type[Args]
    summary: str
    #: its generated CI job logs in to the container registry (it builds or pushes images)
    container_login: bool = False
    #: the step signs (models, provenance, images): its job gets the CONVEYOR_SIGNING_KEY secret
    signs: bool = False
    #: the step waits for a person's decision (``conveyor pipeline approve``): shown as waiting
    waits_for_decision: bool = False
    #: extra keys of its job in a generated GitHub workflow (e.g. ``environment``)
    github_job: Callable[[Step], dict[str, Any]] | None = None
    #: the conveyor-ml extras its work needs beyond the core (its CI job installs them), or a
    #: function of the step when its ``with:`` decides (``pipeline.ci_install``)
    extras: tuple[str, ...] | Callable[[Step], tuple[str, ...]] = ()

    def extras_for(self, step: Step) -> tuple[str, ...]:
        return self.extras(step) if callable(self.extras) else self.extras


# each type has its own arguments' model: the table holds them all
_TYPES: dict[str, StepType[Any]] = {}


@overload
def step_type(
    name: str,
    *,
    container_login: bool = False,
    signs: bool = False,
    waits_for_decision: bool = False,
    github_job: Callable[[Step], dict[str, Any]] | None = None,
    extras: tuple[str, ...] | Callable[[Step], tuple[str, ...]] = (),
) -> Callable[[StepFunction[StepArgs]], StepFunction[StepArgs]]: ...


@overload
def step_type(
    name: str,
    *,
    container_login: bool = False,
    signs: bool = False,
    waits_for_decision: bool = False,
    github_job: Callable[[Step], dict[str, Any]] | None = None,
    args: type[Args],
    extras: tuple[str, ...] | Callable[[Step], tuple[str, ...]] = (),
) -> Callable[[StepFunction[Args]], StepFunction[Args]]: ...


def step_type(
    name: str,
    *,
    container_login: bool = False,
    signs: bool = False,
    waits_for_decision: bool = False,
    github_job: Callable[[Step], dict[str, Any]] | None = None,
    args: type[StepArgs] = StepArgs,
    extras: tuple[str, ...] | Callable[[Step], tuple[str, ...]] = (),
) -> Callable[[StepFunction[Any]], StepFunction[Any]]:
    """Register ``fn(ctx) -> outputs`` as the step type ``name`` (its docstring is the summary),
    taking the ``with:`` arguments ``args`` declares (``ctx.options``, typed by ``StepContext[Args]``) and
    needing the conveyor-ml ``extras`` beyond the core."""

    def register(fn: StepFunction[Any]) -> StepFunction[Any]:
        if name in _TYPES and _TYPES[name].run is not fn:
            raise ValueError(f"step type {name!r} is registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _TYPES[name] = StepType(
            name, fn, args, summary, container_login, signs, waits_for_decision, github_job, extras=extras
        )
        return fn

    return register


def step_types() -> dict[str, StepType[Any]]:
    """Every step type, by name (Conveyor's and plugins', imported once, on first use)."""
    from conveyor import plugins

    plugins.load("step_types")
    return dict(sorted(_TYPES.items()))


def get_step_type(name: str) -> StepType[Any]:
    from conveyor import plugins

    types = step_types()
    if name not in types:
        raise plugins.missing("step_types") or KeyError(f"unknown step type {name!r}; step types: {', '.join(types)}")
    return types[name]
