"""``conveyor ci``: generate CI workflows that run the pipelines' steps with conveyor commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import fail, handle_errors, stdout

app = typer.Typer(rich_markup_mode=None, help="Generate CI workflows from conveyor.yaml.", no_args_is_help=True)


@app.command("github")
def github(
    pipelines: Annotated[list[str] | None, typer.Argument(help="Pipelines to generate (default: all).")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file.")] = Path("conveyor.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Where workflows go.")] = Path(".github/workflows"),
) -> None:
    """Write .github/workflows/conveyor-PIPELINE.yml: jobs for fresh runners, secrets from the repository.

    \b
    Each step is a job, except that steps using a locally built image run in the builder's job;
    every job installs Conveyor pinned (ci.install in conveyor.yaml). See docs/ci.md."""
    from conveyor.pipeline.github import write_workflow
    from conveyor.pipeline.spec import get_pipeline, load_project

    with handle_errors():
        project = load_project(file)
        names = pipelines or list(project.pipelines)
        if not names:
            raise fail(
                f"{file} declares no pipelines, so there is no workflow to write: "
                "`conveyor init --ci github` scaffolds a delivery pipeline and its workflow"
            )
        for name in names:
            path = write_workflow(name, get_pipeline(project, name, file), out, project.ci)
            stdout.print(f"wrote {path}")


@app.command("kfp")
def kfp(
    pipelines: Annotated[list[str] | None, typer.Argument(help="Pipelines to compile (default: all).")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file.")] = Path("conveyor.yaml"),
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where the pipelines' YAML and the Containerfile go.")
    ] = Path("kfp"),
    image: Annotated[
        str | None,
        typer.Option(
            help="Each task's image: Conveyor's, built from the Containerfile written beside the YAML "
            "and pushed where the cluster pulls from [default: conveyor-kfp:<conveyor version>]."
        ),
    ] = None,
    builder_image: Annotated[
        str | None,
        typer.Option(help="The image of the tasks that build or push images [default: --image]."),
    ] = None,
    image_pull_secret: Annotated[
        list[str] | None,
        typer.Option(help="A Secret the pods pull the images with, from a private registry (repeatable)."),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(help="The Containerfile's base: a Python image [default: python:<ci.python>-slim]."),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="The git repository each task clones (a pipeline parameter; empty: the image holds the project)."
        ),
    ] = "",
) -> None:
    """Write kfp/conveyor-PIPELINE.yaml (the pipeline compiled for Kubeflow Pipelines) and kfp/Containerfile.

    \b
    The same tasks as the GitHub workflow: each job a task (a pod) running
    `conveyor pipeline run PIPELINE --step STEP`, the same needs; the step records pass on, models
    travel through the model registry (Secret conveyor-registry), never as files. The tasks run in
    the image kfp/Containerfile builds (Conveyor installed once).
    Needs `pip install 'conveyor-ml[kfp]'`. See docs/interop.md."""
    from conveyor.extras import require
    from conveyor.pipeline.spec import get_pipeline, load_project

    with handle_errors():
        require("kfp", extra="kfp", for_="conveyor ci kfp")
        from conveyor.pipeline.kfp import compile_pipeline, write_containerfile

        project = load_project(file)
        names = pipelines or list(project.pipelines)
        if not names:
            raise fail(f"{file} declares no pipelines, so there is nothing to compile")
        source = source or _origin(file.resolve().parent)
        compiled = {name: get_pipeline(project, name, file) for name in names}
        for name, pipeline in compiled.items():
            target = out / f"conveyor-{name}.yaml"
            compile_pipeline(name, pipeline, target, project.ci, image, source, builder_image, image_pull_secret or ())
            stdout.print(f"wrote {target}")
        containerfile = write_containerfile(compiled.values(), out, project.ci, base_image)
        stdout.print(f"wrote {containerfile} (the tasks' image: see its first lines)")


def _origin(folder: Path) -> str:
    """The project's ``git remote get-url origin``, or empty."""
    import subprocess

    try:
        found = subprocess.run(
            ["git", "-C", str(folder), "remote", "get-url", "origin"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return found.stdout.strip() if found.returncode == 0 else ""
