"""Every conveyor.yaml a user would copy from the docs holds: a ``yaml`` block with a top-level
``pipelines:`` is loaded as a project file, step types and their ``with:`` keys checked (a renamed
key in a step type fails here, not in a user's repository)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conveyor.pipeline.spec import load_project
from tests.conftest import REPO


def _pipeline_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text()
        for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
            block = match.group(1)
            parsed = yaml.safe_load(block)
            if isinstance(parsed, dict) and "pipelines" in parsed:
                found.append((page.name, text[: match.start()].count("\n") + 1, block))
    return found


BLOCKS = _pipeline_blocks()


def test_the_docs_show_pipelines() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize(("page", "line", "block"), BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_each_documented_pipeline_file_validates(page: str, line: int, block: str, tmp_path: Path) -> None:
    path = tmp_path / "conveyor.yaml"
    path.write_text(block)
    project = load_project(path)
    assert project.pipelines, f"{page}:{line}"
