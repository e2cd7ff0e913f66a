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
