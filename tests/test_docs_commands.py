"""Every `conveyor ...` line a user would paste from the docs names a real command and real options.

The runnable blocks are run end to end by journeys (docs/registry.md, docs/models.md,
docs/supply-chain.md in tests/journeys/test_docs_blocks.py and test_cli.py); this test holds every
other block, including the reference-style ones with `[--option VALUE]` and `a|b` alternatives, to
the CLI as it is: a renamed command or a dropped option fails here, not on a user's terminal.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from conveyor.cli.main import app
from tests.conftest import REPO
from tests.docs_blocks import shell_blocks

# options a plugin adds at run time (docs/extending.md installs examples/plugin first)
PLUGIN_OPTIONS = {"--acme-max-canary-requests"}


def _doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _conveyor_commands(line: str) -> Iterator[list[str]]:
    """The conveyor invocations on one pasted line (after `sudo`, `&&`, `;`, `&`)."""
    words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)
    current: list[str] = []
    for word in [*words, "&&"]:
        if word in {"&&", ";", "&", "||", "|"} or word.endswith(";"):
            if word.endswith(";") and word != ";":
                current.append(word[:-1])
            if current and current[0] == "sudo":
                current = current[1:]
            if current and current[0] == "conveyor":
                yield current[1:]
            current = []
        else:
            current.append(word)


def _documented() -> list[tuple[str, list[str]]]:
    found = []
    for path in _doc_files():
        lines = [line for block in shell_blocks(str(path.relative_to(REPO))) for line in block]
        for line in lines:
            for words in _conveyor_commands(line):
                found.append((f"{path.relative_to(REPO)}: conveyor {' '.join(words)}", words))
    return found


def _leaves(group: object, words: list[str]) -> list[tuple[Any, list[str]]]:
    """The commands ``words`` name, each with the words left for it; ``a|b`` names both.
    (Typer vendors its own click, so groups and options are recognised by their attributes.)"""
    if not hasattr(group, "commands") or not words or words[0].startswith("-"):
        return [(group, words)]
    results = []
    for name in words[0].split("|"):
        sub = group.commands.get(name)
        assert sub is not None, f"no command {name!r} under {group.name!r} (it has {sorted(group.commands)})"
        results.extend(_leaves(sub, words[1:]))
    return results


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


DOCUMENTED = _documented()


def test_the_docs_show_conveyor_commands_from_every_page_that_has_them() -> None:
    pages = {label.split(":")[0] for label, _ in DOCUMENTED}
    assert {"README.md", "docs/registry.md", "docs/rollouts.md", "docs/models.md", "docs/pipelines.md"} <= pages


@pytest.mark.parametrize("words", [w for _, w in DOCUMENTED], ids=[label for label, _ in DOCUMENTED])
def test_a_documented_command_names_a_real_command_and_real_options(words: list[str]) -> None:
    root = typer.main.get_command(app)
    if words in (["--version"], []):
        return
    for command, rest in _leaves(root, words):
        assert not hasattr(command, "commands"), f"{' '.join(words)}: names a group, not a command"
        known = _options(command)
        flags = {w.split("=", 1)[0] for w in rest if w.startswith("-") and w != "-"}
        unknown = sorted(f for f in flags if f not in known and f not in PLUGIN_OPTIONS and not f[1:].isdigit())
        assert not unknown, f"{command.name}: no such option {unknown} (it takes {sorted(known)})"
