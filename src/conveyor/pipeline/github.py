"""Generate a GitHub Actions workflow that runs a pipeline's steps, every job on a fresh machine.

On GitHub each job gets a new runner: nothing survives from one job to the next unless it travels
explicitly.  So the workflow is laid out by what has to travel:

* each step is its own job (its own failure domain), with the same ``needs``, **except** steps
  that use an image built by an earlier step (``steps.build.outputs.image``): they run as further
  steps of the builder's job, on the machine where the image exists.  An image never has to
  cross jobs: build, verify and push happen on one runner (docs/ci.md explains the trade-off
  against an OCI-archive artifact or a push by digest);
* step results (``--state``: outputs, outcomes, small artifacts) travel between jobs as one
  workflow artifact per job, uploaded even when the job fails;
* models travel through the model registry (every job authenticates with repository secrets),
  images through the container registry;
* only the jobs whose steps sign (build, push, a register step with ``sign``) get the signing
  key, from the ``CONVEYOR_SIGNING_KEY`` secret; without the secret they build unsigned.

Every job installs Conveyor pinned, as a package (``ci.install`` in conveyor.yaml, with a pinned
uv by default), never as the user's repository, and only calls ``conveyor``: no step logic is
copied into YAML.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from conveyor.pipeline.ci_install import UV, extras_of, install_commands
from conveyor.pipeline.spec import CISettings, Pipeline, topological_order
from conveyor.pipeline.step_types import step_types

__all__ = ["UV", "job_layout", "job_seconds", "workflow", "write_workflow"]

STATE = ".conveyor-ci"
DISPATCH_EVENT = "conveyor-model-version"
OWNER = "{owner}"  # in a parameter's default: the GitHub repository owner (``local`` outside CI)
IMAGE_OUTPUT = re.compile(r"steps(?:\.|\[')([A-Za-z][A-Za-z0-9_-]*)(?:'\])?\.outputs\.image")


def job_layout(pipeline: Pipeline) -> dict[str, list[str]]:
    """Job name -> its steps in order: a step that uses a locally built image joins the builder's job."""
    job_of: dict[str, str] = {}
    for name in topological_order(pipeline.steps):
        step = pipeline.steps[name]
        sources = IMAGE_OUTPUT.findall(json.dumps(step.with_))
        job_of[name] = next((job_of[s] for s in sources if s in job_of), name)
    jobs: dict[str, list[str]] = {}
    for name in topological_order(pipeline.steps):
        jobs.setdefault(job_of[name], []).append(name)
    return jobs


def job_seconds(pipeline: Pipeline, steps: list[str]) -> float:
    """The longest a job of ``steps`` may take: each step's timeout times its attempts."""
    return sum(pipeline.steps[s].timeout * (pipeline.steps[s].retries + 1) for s in steps)


def _literal(value: Any) -> str:
    """A GitHub expression for a parameter's default (``{owner}`` becomes the repository owner)."""
    text = "" if value is None else ("true" if value is True else "false" if value is False else str(value))
    quoted = "'" + text.replace("'", "''") + "'"
    if OWNER in text:
        # GitHub expressions have no lower(): the repository owner goes in as given; conveyor
        # lowers it when it expands the same default outside CI.
        template = text.replace("{", "{{").replace("}", "}}").replace("{{owner}}", "{0}").replace("'", "''")
        return f"format('{template}', github.repository_owner)"
    return quoted


def _triggers(pipeline: Pipeline) -> dict[str, Any]:
    on: dict[str, Any] = {}
    for trigger in pipeline.triggers:
        if trigger.push is not None:
            on["push"] = {"branches": trigger.push.get("branches", ["main"])}
        elif trigger.model_version is not None or trigger.alias is not None:
            on["repository_dispatch"] = {"types": [DISPATCH_EVENT]}
    on["workflow_dispatch"] = {
        "inputs": {
            param: {
                "description": spec.description or f"pipeline parameter {param} (empty: {json.dumps(spec.default)})",
                "required": False,
                "type": "string",
                "default": "",
            }
            for param, spec in pipeline.params.items()
        }
    }
    return on


def _setup(ci: CISettings, extras: list[str]) -> list[dict[str, Any]]:
    """Check out, set up Python, install Conveyor pinned with ``extras``: the same first steps on every fresh runner.

    No ``cache: pip`` on setup-python: it fails a repository without a requirements.txt or a
    pyproject.toml (a ``conveyor init`` repository has neither), and uv installs the whole
    dependency set in seconds without it.
    """
    return [
        {"uses": "actions/checkout@v5"},
        {"uses": "actions/setup-python@v6", "with": {"python-version": ci.python}},
        {"name": "Install Conveyor (pinned)", "run": " && ".join(install_commands(ci, extras))},
    ]


def _login() -> dict[str, Any]:
    return {
        "name": "Log in to the container registry",
        "uses": "docker/login-action@v4",
        "with": {
            "registry": "${{ secrets.CONTAINER_REGISTRY || 'ghcr.io' }}",
            "username": "${{ env.CONVEYOR_REGISTRY_USERNAME }}",
            "password": "${{ env.CONVEYOR_REGISTRY_PASSWORD }}",
        },
    }


def workflow(name: str, pipeline: Pipeline, ci: CISettings | None = None) -> dict[str, Any]:
    ci = ci or CISettings()
    # An empty input (a push, a webhook without that field) means the parameter's default.
    param_args = []
    for param, spec in pipeline.params.items():
        value = f"inputs.{param} || github.event.client_payload.{param} || {_literal(spec.default)}"
        param_args.append(f'--param "{param}=${{{{ {value} }}}}"')
    layout = job_layout(pipeline)
    job_of = {step: job for job, steps in layout.items() for step in steps}
    jobs: dict[str, Any] = {}
    for job_name, step_names in layout.items():
        steps = _setup(ci, extras_of(pipeline.steps[s] for s in step_names))
        needs = sorted({job_of[n] for s in step_names for n in pipeline.steps[s].needs} - {job_name})
        if needs:
            steps.append(
                {
                    "name": "Restore the results of earlier jobs",
                    "uses": "actions/download-artifact@v7",
                    "with": {"pattern": f"{name}-*", "path": STATE, "merge-multiple": True},
                }
            )
        types = {s: step_types()[pipeline.steps[s].uses or ""] for s in step_names if pipeline.steps[s].uses}
        if any(t.container_login for t in types.values()):
            steps.append(_login())
        for step_name in step_names:
            command = " ".join([f"conveyor pipeline run {name} --step {step_name} --state {STATE}", *param_args])
            run: dict[str, Any] = {"name": f"conveyor pipeline run {name} --step {step_name}", "run": command}
            if pipeline.steps[step_name].if_ is not None:
                run["if"] = "${{ !cancelled() }}"  # conveyor evaluates the step's own condition
            steps.append(run)
        steps.append(
            {
                "name": "Keep this job's results for the next jobs",
                "if": "always()",
                "uses": "actions/upload-artifact@v6",
                "with": {
                    "name": f"{name}-{job_name}",
                    "path": STATE,
                    "include-hidden-files": True,
                    "if-no-files-found": "ignore",
                },
            }
        )
        seconds = job_seconds(pipeline, step_names)
        descriptions = [pipeline.steps[s].description or s for s in step_names]
        job: dict[str, Any] = {
            "name": " -> ".join(descriptions),
            "runs-on": ci.runs_on,
            "timeout-minutes": max(1, math.ceil(seconds / 60)),
            "steps": steps,
        }
        if needs:
            job["needs"] = needs
        if any(t.signs for t in types.values()):  # the private key reaches only the jobs that sign
            job["env"] = {"CONVEYOR_SIGNING_KEY": "${{ secrets.CONVEYOR_SIGNING_KEY }}"}
        for step_name, kind in types.items():
            if kind.github_job is not None:
                job.update(kind.github_job(pipeline.steps[step_name]))
        if pipeline.steps[step_names[0]].if_ is not None:
            # the step's own condition is evaluated by conveyor; the job must still start when needs failed
            job["if"] = "${{ !cancelled() }}"
        jobs[job_name] = job
    return {
        "name": f"conveyor {name}",
        "on": _triggers(pipeline),
        "permissions": {"contents": "read", "packages": "write"},
        "concurrency": {"group": f"conveyor-{name}-${{{{ github.ref }}}}", "cancel-in-progress": False},
        "env": {
            "CONVEYOR_REGISTRY": "${{ secrets.CONVEYOR_REGISTRY }}",
            "CONVEYOR_TOKEN": "${{ secrets.CONVEYOR_TOKEN }}",
            "CONVEYOR_REGISTRY_USERNAME": "${{ secrets.CONTAINER_REGISTRY_USERNAME || github.actor }}",
            "CONVEYOR_REGISTRY_PASSWORD": "${{ secrets.CONTAINER_REGISTRY_PASSWORD || secrets.GITHUB_TOKEN }}",
            "CONVEYOR_HOME": "${{ github.workspace }}/.conveyor",
        },
        "jobs": jobs,
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "${{" in value else None)


_Dumper.add_representer(str, _str)


def write_workflow(name: str, pipeline: Pipeline, out_dir: Path, ci: CISettings | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"conveyor-{name}.yml"
    header = (
        f"# Generated by `conveyor ci github {name}` from conveyor.yaml: regenerate rather than edit.\n"
        "# Secrets: CONVEYOR_REGISTRY, CONVEYOR_TOKEN (the model registry); CONTAINER_REGISTRY,\n"
        "# CONTAINER_REGISTRY_USERNAME, CONTAINER_REGISTRY_PASSWORD (optional: GHCR with GITHUB_TOKEN by default).\n"
        "# A registry webhook triggers it as repository_dispatch with event type "
        f'{DISPATCH_EVENT!r} and client_payload {{"model": "name:version"}}.\n'
    )
    text = yaml.dump(workflow(name, pipeline, ci), Dumper=_Dumper, sort_keys=False, width=120)
    path.write_text(header + text)
    return path
