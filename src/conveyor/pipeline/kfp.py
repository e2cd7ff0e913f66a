"""A pipeline as a Kubeflow Pipelines pipeline: the same steps, failure domains and state as the
GitHub workflow (``conveyor.pipeline.github``), compiled to KFP's IR YAML with the ``kfp`` SDK,
and the image its tasks run in (``kfp/Containerfile``).

Each job of ``github.job_layout`` becomes one task (a pod of its own: its own failure domain) of
the one component in ``kfp_step``, which runs ``conveyor pipeline run NAME --step STEP --state``;
the tasks follow the jobs' ``needs``.  What passes from task to task is the step records (outcomes
and outputs: a model as ``name:version`` and its digest), never files: models travel through the
model registry and images through the container registry, as on GitHub.  Pipeline parameters:

- ``params``: the conveyor pipeline's parameters (a JSON object; its defaults are the file's);
- ``source`` and ``revision``: the git repository the tasks clone (empty: the image holds it).

Every task runs in Conveyor's own image (``--image``; ``containerfile`` writes how to build it:
Conveyor pinned with the extras of the pipelines' steps, the ``kfp`` the compiler wrote for, git,
and buildah where a step builds images), so a pod installs nothing when it starts.  The cluster's
side is declared with ``kfp.kubernetes`` in the pipeline's platform spec:

- every task reads ``CONVEYOR_REGISTRY`` and ``CONVEYOR_TOKEN`` from the Secret ``conveyor-registry``;
- tasks whose steps build or push images read ``CONVEYOR_REGISTRY_USERNAME`` and ``_PASSWORD`` from
  ``conveyor-container-registry`` (optional), and run in ``--builder-image`` with an annotation that
  says what they need (a rootless builder in the image, or an external build);
- tasks whose steps sign read ``CONVEYOR_SIGNING_KEY`` from ``conveyor-signing-key`` (optional: unset,
  they build unsigned), and no other task sees it;
- with ``--image-pull-secret``, the pods pull the images from a private registry with that Secret;
- each task gets a timeout: its steps' timeouts times their attempts, plus the clone's allowance.

A step with an ``if:`` runs after failed steps too (``ignore_upstream_failure``); Conveyor
evaluates its condition, as on GitHub.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import __version__
from conveyor.errors import InvalidInput
from conveyor.pipeline.ci_install import extras_of, install_commands
from conveyor.pipeline.github import job_layout, job_seconds
from conveyor.pipeline.spec import CISettings, Pipeline, Step
from conveyor.pipeline.step_types import step_types

#: the tasks' image when ``--image`` is not given: what ``kfp/Containerfile`` builds (push it where
#: the cluster pulls from, and compile with that name)
DEFAULT_IMAGE = f"conveyor-kfp:{__version__}"
CONTAINERFILE = "Containerfile"
#: seconds a task may take beyond its steps' own timeouts: the pod's start and the project's clone
START_ALLOWANCE = 120
#: the annotation a task that builds images carries: what its pod needs
NEEDS_ANNOTATION = "conveyor.dev/needs"
BUILDER_NEEDS = (
    "a container builder in the task's image: buildah, rootless (chroot isolation, vfs storage), "
    "as kfp/Containerfile installs it; or an external build (see docs/interop.md)"
)


@dataclass(frozen=True)
class SecretEnv:
    """A Kubernetes Secret whose keys become a task's environment variables."""

    name: str
    env: dict[str, str]  # the secret's key -> the variable
    optional: bool
    what: str


REGISTRY_SECRET = SecretEnv(
    "conveyor-registry", {"url": "CONVEYOR_REGISTRY", "token": "CONVEYOR_TOKEN"}, False, "the model registry"
)
CONTAINER_REGISTRY_SECRET = SecretEnv(
    "conveyor-container-registry",
    {"username": "CONVEYOR_REGISTRY_USERNAME", "password": "CONVEYOR_REGISTRY_PASSWORD"},
    True,
    "the container registry's credentials (tasks that build or push)",
)
SIGNING_SECRET = SecretEnv(
    "conveyor-signing-key", {"key": "CONVEYOR_SIGNING_KEY"}, True, "the signing key (tasks that sign)"
)
SECRETS = (REGISTRY_SECRET, CONTAINER_REGISTRY_SECRET, SIGNING_SECRET)


def _builds(steps: Iterable[Step]) -> bool:
    """Whether a step builds or pushes images (it needs a container engine and the registry's login)."""
    types = step_types()
    return any(step.uses and types[step.uses].container_login for step in steps)


def _signs(steps: Iterable[Step]) -> bool:
    types = step_types()
    return any(step.uses and types[step.uses].signs for step in steps)


def install_command(ci: CISettings, pipelines: Iterable[Pipeline], kfp_version: str | None = None) -> str:
    """``ci.install`` as one shell command for the tasks' image, with the extras of all the pipelines'
    steps, and ``kfp==kfp_version`` (a KFP component first runs ``pip install kfp==<the compiler's>``:
    the same version already installed makes that a no-op)."""
    steps = [step for pipeline in pipelines for step in pipeline.steps.values()]
    if kfp_version:
        ci = ci.model_copy(update={"install": [*ci.install, f"kfp=={kfp_version}"]})
    return " && ".join(install_commands(ci, extras_of(steps), pod=True))


def containerfile(ci: CISettings, pipelines: Iterable[Pipeline], base: str | None = None) -> str:
    """The Containerfile of the image every task runs in: Conveyor installed, pinned, once."""
    import kfp

    pipelines = list(pipelines)
    builds = _builds(step for pipeline in pipelines for step in pipeline.steps.values())
    packages = "git ca-certificates" + (" buildah fuse-overlayfs uidmap" if builds else "")
    lines = [
        "# Generated by `conveyor ci kfp` from conveyor.yaml: the image every task of kfp/conveyor-*.yaml runs in",
        "# (Conveyor pinned with its steps' extras, installed once here: a task's pod installs nothing).",
        "# Build it, push it where the cluster pulls from, and compile with the same name:",
        f"#   podman build -t REGISTRY/{DEFAULT_IMAGE} kfp/ && podman push REGISTRY/{DEFAULT_IMAGE}",
        f"#   conveyor ci kfp --image REGISTRY/{DEFAULT_IMAGE}",
        f"FROM {base or f'docker.io/library/python:{ci.python}-slim'}",
        f"RUN apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*",
        f"RUN {install_command(ci, pipelines, kfp.__version__)}",
    ]
    if builds:
        lines += [
            "# Builds in an unprivileged pod: buildah without a daemon, chroot isolation, vfs storage",
            "ENV BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs",
        ]
    lines += [
        "RUN useradd --create-home --uid 1000 conveyor",
        "USER 1000",
        "ENV HOME=/home/conveyor CONVEYOR_HOME=/home/conveyor/.conveyor",
        "WORKDIR /home/conveyor",
        "",
    ]
    return "\n".join(lines)


def compile_pipeline(
    name: str,
    pipeline: Pipeline,
    out: Path,
    ci: CISettings | None = None,
    image: str | None = None,
    source: str = "",
    builder_image: str | None = None,
    pull_secrets: Iterable[str] = (),
) -> Path:
    """Write the KFP IR YAML for pipeline NAME to OUT; returns OUT.

    ``pull_secrets``: the Secrets (``kubernetes.io/dockerconfigjson``) the pods pull the images with."""
    from kfp import compiler, dsl, kubernetes

    from conveyor.pipeline.kfp_step import MAX_UPSTREAM, conveyor_step

    ci = ci or CISettings()
    pull_secrets = list(pull_secrets)
    component = dsl.component(conveyor_step, base_image=image or DEFAULT_IMAGE)
    builder = dsl.component(conveyor_step, base_image=builder_image or image or DEFAULT_IMAGE)
    layout = job_layout(pipeline)
    job_of = {step: job for job, steps in layout.items() for step in steps}
    defaults = {param: spec.default for param, spec in pipeline.params.items()}

    def body(  # the annotations KFP reads are set below (this module's are strings)
        params: dict = defaults,
        source: str = source,
        revision: str = "",
    ) -> None:
        tasks: dict[str, Any] = {}
        for job, steps in layout.items():
            declared = [pipeline.steps[s] for s in steps]
            upstream = sorted({job_of[n] for s in declared for n in s.needs} - {job})
            if len(upstream) > MAX_UPSTREAM:
                raise InvalidInput(
                    f"step {steps[0]} follows {len(upstream)} jobs; a KFP task follows at most {MAX_UPSTREAM}"
                )
            inputs = {f"after_{i}": "" for i in range(1, MAX_UPSTREAM + 1)}  # all given: ignore_upstream_failure asks
            inputs.update({f"after_{i}": tasks[u].output for i, u in enumerate(upstream, start=1)})
            builds = _builds(declared)
            task = (builder if builds else component)(
                pipeline=name, steps=steps, params=params, source=source, revision=revision, **inputs
            )
            task.set_display_name(" -> ".join(s.description or n for n, s in zip(steps, declared, strict=True)))
            task.set_caching_options(False)  # a delivery step has effects: never skip it on a cache hit
            if declared[0].if_ is not None:
                task.ignore_upstream_failure()
            wanted = [REGISTRY_SECRET]
            if builds:
                wanted.append(CONTAINER_REGISTRY_SECRET)
                kubernetes.add_pod_annotation(task, NEEDS_ANNOTATION, BUILDER_NEEDS)
            if _signs(declared):  # the private key reaches only the tasks that sign
                wanted.append(SIGNING_SECRET)
            for secret in wanted:
                kubernetes.use_secret_as_env(
                    task, secret_name=secret.name, secret_key_to_env=secret.env, optional=secret.optional
                )
            if pull_secrets:
                kubernetes.set_image_pull_secrets(task, pull_secrets)
            kubernetes.set_timeout(task, math.ceil(job_seconds(pipeline, steps)) + START_ALLOWANCE)
            tasks[job] = task

    body.__name__ = name.replace("-", "_")
    body.__annotations__ = {"params": dict, "source": str, "revision": str, "return": None}
    description = pipeline.description or f"conveyor pipeline {name}"
    compiled = dsl.pipeline(name=f"conveyor-{name}", description=description)(body)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(compiled, str(out))
    return out


def write_containerfile(
    pipelines: Iterable[Pipeline], out_dir: Path, ci: CISettings | None = None, base: str | None = None
) -> Path:
    """Write OUT_DIR/Containerfile, the tasks' image; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CONTAINERFILE
    path.write_text(containerfile(ci or CISettings(), pipelines, base))
    return path
