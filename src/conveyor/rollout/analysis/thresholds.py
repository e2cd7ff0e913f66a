"""The rollout's thresholds: a mapping of name to value, checked against the metric table when a rollout uses them.

Each metric declares its thresholds (:class:`~conveyor.rollout.analysis.metric.Threshold`);
:func:`checked_thresholds` validates a rollout's mapping (conveyor.yaml's ``rollout.thresholds``
merged with the command's options) against the metrics installed at that moment, with their types
and bounds, and fills in their defaults.  Nothing is built when this module is imported, so a
saved status record is a plain mapping that loads whatever plugins are installed now (a record
written before a metric existed, or by one since removed, still loads), and attribute access
(``limits.max_error_rate``) reads a value, or the declared default of a threshold the record lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, ValidationError, create_model
from pydantic_core import core_schema

from conveyor.errors import InvalidInput
from conveyor.rollout.analysis.metric import Threshold
from conveyor.rollout.analysis.metrics import all_metrics, all_thresholds

__all__ = ["Thresholds", "all_metrics", "all_thresholds", "checked_thresholds"]


class Thresholds(dict[str, Any]):
    """When an analysis is successful, failed or inconclusive (see docs/rollouts.md): name -> value."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self:
            return self[name]
        declared = {t.name: t for t in all_thresholds()}.get(name)
        if declared is None:
            raise AttributeError(f"no analysis threshold {name!r}")
        return declared.default

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # a record holds a plain mapping: it loads whatever metrics are installed
        return core_schema.no_info_after_validator_function(cls, handler(dict[str, Any]))


def _field(threshold: Threshold) -> tuple[Any, Any]:
    kind: Any = threshold.type | None if threshold.optional else threshold.type
    return kind, Field(threshold.default, description=threshold.help, ge=threshold.ge, le=threshold.le, gt=threshold.gt)


def checked_thresholds(given: Mapping[str, Any], where: str = "thresholds") -> Thresholds:
    """Every installed metric's thresholds: ``given``'s values, checked, and the defaults for the rest.

    An unknown name (a typo, or a metric not installed here) or a value out of bounds raises
    :class:`~conveyor.errors.InvalidInput` naming it."""
    declared = all_thresholds()
    known = {t.name for t in declared}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InvalidInput(f"unknown threshold(s) {unknown}; thresholds: {', '.join(sorted(known))}")
    fields: dict[str, Any] = {t.name: _field(t) for t in declared}
    model = create_model("Thresholds", __config__=ConfigDict(extra="forbid"), **fields)
    try:
        checked = model(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise InvalidInput(problems) from None
    return Thresholds(checked.model_dump())
