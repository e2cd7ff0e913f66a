"""One CLI option per analysis threshold, from the metric table: `rollout start` and `rollout export` share them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from conveyor.cli.settings_options import greater_than


def with_threshold_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give the command one option per analysis threshold (``**thresholds``), read from the metric table.

    A new metric's thresholds become options here without this file changing.  Bounds are
    checked by the option itself; the default (None) means conveyor.yaml's value, else the metric's.
    """
    import inspect

    from conveyor.rollout.analysis.metrics import all_thresholds

    signature = inspect.signature(command, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for threshold in all_thresholds():
        if threshold.type is bool:
            continue  # switches have their own options (--no-contract)
        kind: Any = threshold.type
        default = "off" if threshold.default is None else f"{threshold.default:g}"
        option = typer.Option(
            f"--{threshold.name.replace('_', '-')}",
            help=f"{threshold.help[0].upper()}{threshold.help[1:]} [default: conveyor.yaml, else {default}].",
            min=threshold.ge,
            max=threshold.le,
            callback=greater_than(threshold.gt) if threshold.gt is not None else None,
            rich_help_panel="Analysis thresholds",
        )
        annotation = Annotated[kind | None, option]
        params.append(
            inspect.Parameter(threshold.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        )
    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return command
