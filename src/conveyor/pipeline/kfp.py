"""A pipeline as a Kubeflow Pipelines pipeline: the same steps, failure domains and state as the
GitHub workflow (``conveyor.pipeline.github``), compiled to KFP's IR YAML with the ``kfp`` SDK.

Each job of ``github.job_layout`` becomes one task (a pod of its own: its own failure domain) of
the one component in ``kfp_step``, which runs ``conveyor pipeline run NAME --step STEP --state``;
the tasks follow the jobs' ``needs``.  The ``--state`` folder (step outputs and outcomes) travels
as each task's output into the tasks after it, which merge what they receive, as the workflow's
artifacts do.  Models travel through the registry and images through
the container registry, as on GitHub.  Pipeline parameters:

- ``params``: the conveyor pipeline's parameters (a JSON object; its defaults are the file's);
- ``source`` and ``revision``: the git repository the tasks clone (empty: the image holds it);
- ``install``: the shell command that installs Conveyor pinned in each task (``ci.install``).

A step with an ``if:`` runs after failed steps too (``ignore_upstream_failure``); Conveyor
evaluates its condition, as on GitHub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.pipeline.ci_install import extras_of, install_commands
from conveyor.pipeline.github import job_layout
from conveyor.pipeline.spec import CISettings, Pipeline


def install_command(ci: CISettings, pipeline: Pipeline) -> str:
    """``ci.install`` as one shell command for a task's pod, with the extras of all the pipeline's steps
    (one command for every task: the ``install`` parameter)."""
    return " && ".join(install_commands(ci, extras_of(pipeline.steps.values()), pod=True))


def compile_pipeline(
    name: str, pipeline: Pipeline, out: Path, ci: CISettings | None = None, image: str | None = None, source: str = ""
) -> Path:
    """Write the KFP IR YAML for pipeline NAME to OUT; returns OUT."""
    from kfp import compiler, dsl

    from conveyor.pipeline.kfp_step import MAX_UPSTREAM, conveyor_step

    ci = ci or CISettings()
    component = dsl.component(conveyor_step, base_image=image or f"python:{ci.python}")
    layout = job_layout(pipeline)
    job_of = {step: job for job, steps in layout.items() for step in steps}
    defaults = {param: spec.default for param, spec in pipeline.params.items()}

    def body(  # the annotations KFP reads are set below (this module's are strings)
        params: dict = defaults,
        source: str = source,
        revision: str = "",
        install: str = install_command(ci, pipeline),
    ) -> None:
        tasks: dict[str, Any] = {}
        for job, steps in layout.items():
            upstream = sorted({job_of[n] for s in steps for n in pipeline.steps[s].needs} - {job})
            if len(upstream) > MAX_UPSTREAM:
                raise InvalidInput(
                    f"step {steps[0]} follows {len(upstream)} jobs; a KFP task follows at most {MAX_UPSTREAM}"
                )
            inputs = {f"after_{i}": "" for i in range(1, MAX_UPSTREAM + 1)}  # all given: ignore_upstream_failure asks
            inputs.update({f"after_{i}": tasks[u].output for i, u in enumerate(upstream, start=1)})
            task = component(
                pipeline=name, steps=steps, params=params, source=source, revision=revision, install=install, **inputs
            )
            task.set_display_name(" -> ".join(pipeline.steps[s].description or s for s in steps))
            task.set_caching_options(False)  # a delivery step has effects: never skip it on a cache hit
            if pipeline.steps[steps[0]].if_ is not None:
                task.ignore_upstream_failure()
            tasks[job] = task

    body.__name__ = name.replace("-", "_")
    body.__annotations__ = {"params": dict, "source": str, "revision": str, "install": str, "return": None}
    description = pipeline.description or f"conveyor pipeline {name}"
    compiled = dsl.pipeline(name=f"conveyor-{name}", description=description)(body)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(compiled, str(out))
    return out
