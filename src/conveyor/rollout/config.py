"""The ``rollout:`` section of conveyor.yaml, and canary step lists like ``10,25,50,100``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.durations import parse_duration
from conveyor.errors import ClientError, InvalidInput


def parse_steps(value: str | list[float]) -> list[float]:
    """``10,25,50,100`` -> [10, 25, 50, 100]: increasing percentages in (0, 100]."""
    try:
        steps = [float(s) for s in value.split(",")] if isinstance(value, str) else [float(s) for s in value]
    except ValueError:
        raise InvalidInput(f"invalid steps {value!r}: give percentages like 10,25,50,100") from None
    if not steps or any(not 0 < s <= 100 for s in steps):
        raise InvalidInput(f"invalid steps {value!r}: each must be a percentage above 0 and at most 100")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise InvalidInput(f"invalid steps {value!r}: they must increase")
    return steps


class SupplyChainPolicy(BaseModel):
    """``rollout.supply_chain``: what must be proven before a canary gets any traffic."""

    model_config = ConfigDict(extra="forbid")

    require: bool = Field(default=False, description="refuse a canary whose supply-chain checks fail")
    trusted_keys: list[str] = Field(
        default_factory=list, description="public key files to trust, relative to conveyor.yaml"
    )


class RolloutSettings(BaseModel):
    """A rollout's spec: conveyor.yaml's ``rollout:`` section, and ``conveyor rollout start``'s options
    (``cli/settings_options.with_spec_options``: one option per scalar field, over the section)."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(None, description="Service to roll out in [default: the model's name].")
    router: str | None = Field(None, description="Router URL [default: the one `conveyor router` recorded].")
    strategy: Literal["canary", "blue-green"] = Field("canary", description="canary or blue-green.")
    steps: list[float] = Field(
        default_factory=lambda: [10.0, 25.0, 50.0, 100.0],
        description="Canary traffic percentages, e.g. 10,25,50,100.",
    )
    interval: str | float = Field("30s", description="Time per step before its analysis, e.g. 30s, 2m.")
    rollback_window: str | float = Field("60s", description="Blue-green: how long blue is kept after the switch.")
    contract: str | None = Field(None, description="Verification contract run against the canary.")
    command: str | None = Field(
        None,
        description="Backend command template instead of `conveyor serve REF` ({port}, {ref}, {version}).",
    )
    # checked against the metrics installed when a rollout uses them (rollout.analysis.thresholds)
    thresholds: dict[str, Any] = Field(default_factory=dict, description="Analysis thresholds by name.")
    supply_chain: SupplyChainPolicy = SupplyChainPolicy()

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: str | list[float]) -> list[float]:
        try:
            return parse_steps(value)
        except ClientError as exc:
            raise ValueError(exc.message) from None

    @field_validator("interval", "rollback_window")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        try:
            parse_duration(value)
        except ClientError as exc:
            raise ValueError(exc.message) from None
        return value


class _Project(BaseModel):
    model_config = ConfigDict(extra="allow")

    rollout: RolloutSettings = RolloutSettings()


def load_settings(path: Path | None) -> RolloutSettings:
    """conveyor.yaml's rollout section (defaults when the file or the section is absent)."""
    if path is None:
        default = Path("conveyor.yaml")
        if not default.exists():
            return RolloutSettings()
        path = default
    from conveyor.yamlfile import load_yaml_model  # yaml: only where a project file is read

    settings = load_yaml_model(path, _Project, "no such file").rollout
    # trusted keys are files of the project: relative to conveyor.yaml, wherever the command runs
    settings.supply_chain.trusted_keys = [str(path.parent / key) for key in settings.supply_chain.trusted_keys]
    return settings
