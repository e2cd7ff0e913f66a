"""Generate a GitHub Actions workflow that runs a pipeline's steps as jobs.

One job per step (one failure domain each) with the same ``needs``; every job checks out,
sets up Python with pip caching, installs Conveyor, restores the results of the steps it
needs, runs ``conveyor pipeline run PIPELINE --step STEP --state ...`` and uploads its
own results.  The workflow only calls ``conveyor``: no step logic is copied into YAML.
Registry and container-registry credentials come from repository secrets, never inlined.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from conveyor.pipeline.spec import Pipeline

STATE = ".conveyor-ci"
DISPATCH_EVENT = "conveyor-model-version"


def _install_command(project: Path) -> str:
    if (project / "requirements.lock").is_file() and (project / "pyproject.toml").is_file():
        return "pip install -r requirements.lock && pip install --no-deps -e ."
    from conveyor import __version__

    return f"pip install conveyor-ml=={__version__}"


def workflow(name: str, pipeline: Pipeline, project: Path) -> dict[str, Any]:
    on: dict[str, Any] = {}
    for trigger in pipeline.triggers:
        if trigger.push is not None:
            on["push"] = {"branches": trigger.push.get("branches", ["main"])}
        elif trigger.model_version is not None or trigger.alias is not None:
            on["repository_dispatch"] = {"types": [DISPATCH_EVENT]}
    on["workflow_dispatch"] = {
        "inputs": {
            param: {
                "description": spec.description or f"pipeline parameter {param}",
                "required": False,
                "type": "string",
                "default": "" if spec.default is None else str(spec.default),
            }
            for param, spec in pipeline.params.items()
        }
    }
    # A model-version webhook relayed as repository_dispatch carries the reference in its payload.
    param_args = []
    for param in pipeline.params:
        source = f"inputs.{param} || github.event.client_payload.{param}"
        param_args.append(f'--param "{param}=${{{{ {source} }}}}"')
    env = {
        "CONVEYOR_REGISTRY": "${{ secrets.CONVEYOR_REGISTRY }}",
        "CONVEYOR_TOKEN": "${{ secrets.CONVEYOR_TOKEN }}",
        "CONVEYOR_REGISTRY_USERNAME": "${{ secrets.CONTAINER_REGISTRY_USERNAME || github.actor }}",
        "CONVEYOR_REGISTRY_PASSWORD": "${{ secrets.CONTAINER_REGISTRY_PASSWORD || secrets.GITHUB_TOKEN }}",
        "CONVEYOR_HOME": "${{ github.workspace }}/.conveyor",
    }
    install = _install_command(project)
    jobs: dict[str, Any] = {}
    for step_name, step in pipeline.steps.items():
        steps: list[dict[str, Any]] = [
            {"uses": "actions/checkout@v5"},
            {
                "uses": "actions/setup-python@v6",
                "with": {
                    "python-version": "3.11",
                    "cache": "pip",
                    **(
                        {"cache-dependency-path": "requirements.lock"}
                        if (project / "requirements.lock").is_file()
                        else {}
                    ),
                },
            },
            {"name": "Install Conveyor", "run": install},
        ]
        if step.needs:
            steps.append(
                {
                    "name": "Restore results of needed steps",
                    "uses": "actions/download-artifact@v7",
                    "with": {"pattern": f"{name}-*", "path": STATE, "merge-multiple": True},
                }
            )
        command = " ".join([f"conveyor pipeline run {name} --step {step_name} --state {STATE}", *param_args])
        steps.append({"name": f"conveyor pipeline run {name} --step {step_name}", "run": command})
        steps.append(
            {
                "name": "Keep this step's results",
                "if": "always()",
                "uses": "actions/upload-artifact@v6",
                "with": {
                    "name": f"{name}-{step_name}",
                    "path": STATE,
                    "include-hidden-files": True,
                    "if-no-files-found": "ignore",
                },
            }
        )
        job: dict[str, Any] = {
            "name": step.description or step_name,
            "runs-on": "ubuntu-latest",
            "timeout-minutes": max(1, math.ceil(step.timeout * (step.retries + 1) / 60)),
            "steps": steps,
        }
        if step.needs:
            job["needs"] = list(step.needs)
        if step.if_ is not None:
            # the step's own condition is evaluated by conveyor; the job must still start when needs failed
            job["if"] = "${{ !cancelled() }}"
        jobs[step_name] = job
    return {
        "name": f"conveyor {name}",
        "on": on,
        "permissions": {"contents": "read", "packages": "write"},
        "concurrency": {"group": f"conveyor-{name}-${{{{ github.ref }}}}", "cancel-in-progress": False},
        "env": env,
        "jobs": jobs,
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "${{" in value else None)


_Dumper.add_representer(str, _str)


def write_workflow(name: str, pipeline: Pipeline, project: Path, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"conveyor-{name}.yml"
    header = (
        f"# Generated by `conveyor ci github {name}` from conveyor.yaml: regenerate rather than edit.\n"
        "# Secrets: CONVEYOR_REGISTRY, CONVEYOR_TOKEN (model registry); CONTAINER_REGISTRY_USERNAME/PASSWORD\n"
        "# (optional, else GHCR with GITHUB_TOKEN). A registry webhook triggers it as repository_dispatch\n"
        f'# with event type {DISPATCH_EVENT!r} and client_payload {{"model": "name:version"}}.\n'
    )
    path.write_text(header + yaml.dump(workflow(name, pipeline, project), Dumper=_Dumper, sort_keys=False, width=120))
    return path
