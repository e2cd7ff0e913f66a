"""Pipelines declared in ``conveyor.yaml``, validated with errors that point at the line.

    pipelines:
      deliver:
        params:
          model: sentiment@staging
        triggers:
          - manual: {}
          - push: {branches: [main]}
          - model_version: {model: sentiment}
        steps:
          fetch:
            uses: fetch-model
            with: {ref: "${{ params.model }}"}
          lint: {uses: lint, needs: [fetch]}
          unit: {run: "pytest -q tests", needs: [fetch], timeout: 600, retries: 1}
          gate: {python: "mypkg.checks:gate", needs: [unit], if: "steps.unit.outcome == 'success'"}

A step is exactly one of ``uses`` (a built-in step type), ``run`` (a shell command) or
``python`` (``module:function`` of the project).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conveyor import plugins
from conveyor.errors import NotFound
from conveyor.monitoring.thresholds import Thresholds
from conveyor.pipeline.step_args import static_problems
from conveyor.pipeline.step_types import step_types
from conveyor.yamlfile import load_yaml_model

STEP_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Any = None
    description: str = ""


class DriftTrigger(Thresholds):
    """Run when ``conveyor monitor`` finds the served version's latest window drifted (or its live
    quality below the bound): checked by ``conveyor pipeline watch`` every ``every``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    alias: str = "production"
    logs: str = Field(description="The payload log the server writes (serve --log-payloads DEST)")
    every: str = "5m"
    window: int = Field(default=500, ge=10)
    since: str | None = Field(default=None, description="Judge the traffic since then (1d, 7d), as monitor --since")
    window_time: str | None = Field(default=None, description="Windows of this much time (1h), as --window-time")
    # and every threshold of `conveyor monitor` (psi, alpha, min_items, min_labels, min_accuracy, max_error)


class MlflowTrigger(BaseModel):
    """Import each new version of a model in MLflow's registry (or each move of its alias) into
    Conveyor's registry and run the pipeline on it: polled by ``conveyor pipeline watch`` every ``every``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The model's name in MLflow's registry")
    alias: str | None = Field(default=None, description="Follow this MLflow alias's moves instead of new versions")
    tracking_uri: str | None = Field(default=None, description="MLflow's server [default: MLFLOW_TRACKING_URI]")
    register_as: str | None = Field(default=None, description="The name in Conveyor's registry [default: model]")
    aliases: list[str] = Field(default_factory=list, description="Conveyor aliases pointed at each imported version")
    mlflow_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Conveyor alias: MLflow alias moved to the MLflow version when the Conveyor alias reaches "
        "its import (production: champion)",
    )
    every: str = Field(default="30s", description="How often MLflow is checked (at once too, by its webhook)")

    @property
    def key(self) -> str:
        """One string per trigger: what the watch remembers and what its events carry."""
        return f"{self.tracking_uri or '$MLFLOW_TRACKING_URI'} {self.model}{'@' + self.alias if self.alias else ''}"


TRIGGER_KINDS = ("push", "manual", "model_version", "alias", "drift", "mlflow")


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push: dict[str, list[str]] | None = None
    manual: dict[str, Any] | None = None
    model_version: dict[str, str] | None = None
    alias: dict[str, str] | None = None
    drift: DriftTrigger | None = None
    mlflow: MlflowTrigger | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kinds = [k for k in TRIGGER_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a trigger is exactly one of {', '.join(TRIGGER_KINDS)}")
        if self.model_version is not None and "model" not in self.model_version:
            raise ValueError("a model_version trigger names the model: {model: NAME}")
        if self.alias is not None and not {"model", "alias"} <= set(self.alias):
            raise ValueError("an alias trigger names the model and the alias: {model: NAME, alias: ALIAS}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TRIGGER_KINDS if getattr(self, k) is not None)


class CacheSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(default_factory=list, description="Files or folders whose content is part of the key")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    uses: str | None = None
    run: str | None = None
    python: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    needs: list[str] = Field(default_factory=list)
    if_: str | None = Field(default=None, alias="if")
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=3600, gt=0, description="seconds")
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff: float = Field(default=2.0, ge=0, description="seconds before the first retry, doubling")
    cache: bool | CacheSpec = False
    description: str = ""

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [a for a in ("uses", "run", "python") if getattr(self, a) is not None]
        if len(actions) != 1:
            raise ValueError("a step has exactly one of uses, run, python")
        if self.uses is not None:
            types = step_types()
            if self.uses not in types:
                raise plugins.missing("step_types") or ValueError(
                    f"unknown step type {self.uses!r}; step types: {', '.join(types)}"
                )
            problems = static_problems(types[self.uses].args, self.with_)
            if problems:
                raise ValueError(f"`with:` of `uses: {self.uses}`: {'; '.join(problems)}")
        if self.python is not None and ":" not in self.python:
            raise ValueError(f"python step {self.python!r} must be module:function")
        return self

    @property
    def kind(self) -> str:
        return "uses" if self.uses else "run" if self.run else "python"


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    params: dict[str, Param] = Field(default_factory=dict)
    triggers: list[Trigger] = Field(default_factory=lambda: [Trigger(manual={})])
    max_parallel: int = Field(default=4, ge=1, le=64)
    steps: dict[str, Step] = Field(min_length=1)

    @field_validator("params", mode="before")
    @classmethod
    def _shorthand_params(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: v if isinstance(v, dict) and set(v) <= {"default", "description"} else {"default": v}
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _dag(self) -> Pipeline:
        import re

        for name, step in self.steps.items():
            if not re.match(STEP_NAME, name):
                raise ValueError(f"step name {name!r}: letters, digits, '_' and '-', starting with a letter")
            for need in step.needs:
                if need not in self.steps:
                    raise ValueError(f"step {name!r} needs {need!r}, which is not a step of this pipeline")
                if need == name:
                    raise ValueError(f"step {name!r} needs itself")
        order = topological_order(self.steps)
        if len(order) != len(self.steps):
            stuck = sorted(set(self.steps) - set(order))
            raise ValueError(f"the steps form a cycle: {', '.join(stuck)}")
        return self


def topological_order(steps: dict[str, Step]) -> list[str]:
    remaining = {name: set(step.needs) for name, step in steps.items()}
    order: list[str] = []
    while True:
        ready = sorted(name for name, needs in remaining.items() if not needs)
        if not ready:
            return order
        for name in ready:
            order.append(name)
            del remaining[name]
        for needs in remaining.values():
            needs.difference_update(ready)


def _pinned_conveyor() -> list[str]:
    from conveyor import __version__

    return [f"conveyor-ml=={__version__}"]


class CISettings(BaseModel):
    """How generated CI workflows set up each job (every job is a fresh machine)."""

    model_config = ConfigDict(extra="forbid")

    install: list[str] = Field(
        default_factory=_pinned_conveyor,
        description="Arguments of each `pip install` every job runs: Conveyor pinned, as a package "
        "(e.g. ['conveyor-ml==0.1.0 --index-url https://pypi.example.com/simple'] for a private index)",
    )
    installer: Literal["uv", "pip"] = Field(
        default="uv",
        description="What runs those installs: uv (pinned, installed with pip first; about 8x faster "
        "on a fresh runner, the same arguments) or pip itself (e.g. for a keyring-authenticated index)",
    )
    python: str = "3.11"
    runs_on: str = "ubuntu-latest"


class ProjectFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    pipelines: dict[str, Pipeline] = Field(default_factory=dict)
    ci: CISettings = Field(default_factory=CISettings)


def load_project(path: Path) -> ProjectFile:
    """Parse and validate ``conveyor.yaml``; errors name the file, the line and the field."""
    return load_yaml_model(Path(path), ProjectFile, "no such file (conveyor init writes one)")


def get_pipeline(project: ProjectFile, name: str, path: Path) -> Pipeline:
    if name not in project.pipelines:
        known = ", ".join(sorted(project.pipelines)) or "none"
        raise NotFound(f"{path}: no pipeline {name!r} (pipelines: {known})")
    return project.pipelines[name]


StepStatus = Literal["pending", "running", "waiting", "success", "failure", "skipped", "cached"]
