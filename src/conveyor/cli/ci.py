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
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the pipelines' YAML goes.")] = Path("kfp"),
    image: Annotated[
        str | None,
        typer.Option(
            help="Each task's image: Python with git (and Conveyor, or pip to install it) "
            "[default: python:<ci.python>]."
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            help="The git repository each task clones (a pipeline parameter; empty: the image holds the project)."
        ),
    ] = "",
) -> None:
    """Write kfp/conveyor-PIPELINE.yaml: the pipeline compiled for Kubeflow Pipelines (IR YAML).

    \b
    The same tasks as the GitHub workflow: each job a task (a pod) running
    `conveyor pipeline run PIPELINE --step STEP`, the same needs, the step state passed on.
    Needs `pip install 'conveyor-ml[kfp]'`. See docs/interop.md."""
    from conveyor.extras import require
    from conveyor.pipeline.spec import get_pipeline, load_project

    with handle_errors():
        require("kfp", extra="kfp", for_="conveyor ci kfp")
        from conveyor.pipeline.kfp import compile_pipeline

        project = load_project(file)
        names = pipelines or list(project.pipelines)
        if not names:
            raise fail(f"{file} declares no pipelines, so there is nothing to compile")
        source = source or _origin(file.resolve().parent)
        for name in names:
            target = out / f"conveyor-{name}.yaml"
            compile_pipeline(name, get_pipeline(project, name, file), target, project.ci, image, source)
            stdout.print(f"wrote {target}")


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
