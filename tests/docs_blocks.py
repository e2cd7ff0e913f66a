"""The shell blocks of the docs as a user pastes them: one command per (continued) line.

Shared by the test that holds every documented command to the CLI (test_docs_commands.py) and the
journeys that run a page's blocks as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tests.conftest import REPO

SHELL_FENCES = {"sh", "bash", "console", "shell"}


def shell_blocks(page: str) -> list[list[str]]:
    """Each shell block of ``page`` (a path under the repository), as its command lines."""
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", (REPO / page).read_text(), re.S | re.M):
        if match.group(1) in SHELL_FENCES:
            blocks.append(list(_commands(match.group(2), console=match.group(1) == "console")))
    return blocks


def shell_block(page: str, starting_with: str) -> list[str]:
    """The one shell block of ``page`` whose first command starts with ``starting_with``."""
    found = [b for b in shell_blocks(page) if b and b[0].startswith(starting_with)]
    assert len(found) == 1, f"{page}: {len(found)} shell blocks start with {starting_with!r}"
    return found[0]


def _commands(block: str, console: bool) -> Iterator[str]:
    pending = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if console:
            if not line.startswith("$ "):
                continue  # output, not a command
            line = line[2:]
        if line and not line.startswith("#"):
            yield line
