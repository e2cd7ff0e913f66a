"""``conveyor ci``: generate CI workflows that run the pipelines' steps with conveyor commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import handle_errors, stdout

app = typer.Typer(rich_markup_mode=None, help="Generate CI workflows from conveyor.yaml.", no_args_is_help=True)


@app.command("github")
def github(
    pipelines: Annotated[list[str] | None, typer.Argument(help="Pipelines to generate (default: all).")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The project file.")] = Path("conveyor.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Where workflows go.")] = Path(".github/workflows"),
) -> None:
    """Write .github/workflows/conveyor-PIPELINE.yml: one job per step, secrets from the repository."""
    from conveyor.pipeline.github import write_workflow
    from conveyor.pipeline.spec import get_pipeline, load_project

    with handle_errors():
        project = load_project(file)
        names = pipelines or list(project.pipelines)
        for name in names:
            path = write_workflow(name, get_pipeline(project, name, file), file.resolve().parent, out)
            stdout.print(f"wrote {path}")
