"""The documentation site builds with mkdocs --strict: a broken link or anchor, or a page left out
of the navigation, fails here; the README stays a front page that points into it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_the_site_builds_strictly_with_every_page_in_the_navigation(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pages = {p.stem for p in (REPO / "docs").glob("*.md")}
    built = {p.parent.name for p in (tmp_path / "site").glob("*/index.html")}
    assert pages - {"index"} <= built, f"pages not in the site: {sorted(pages - {'index'} - built)}"


def test_the_readme_is_a_front_page_whose_links_reach_the_docs() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert targets and all((REPO / t).is_file() for t in targets), [t for t in targets if not (REPO / t).is_file()]
    linked = {Path(t).name for t in targets}
    assert {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"} <= linked
