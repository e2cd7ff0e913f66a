"""``conveyor models diff``: what changed between two versions, files by digest and small text files by line."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.models.common import JsonOption, RegistryOption, TokenOption
from conveyor.cli.output import handle_errors, print_json, stdout
from conveyor.registry.config import open_registry
from conveyor.registry.diff import diff_versions
from conveyor.sizes import human_size


def diff(
    old: Annotated[str, typer.Argument(help="The version compared from: name:N or name@alias.")],
    new: Annotated[str, typer.Argument(help="The version compared to.")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what changed from OLD to NEW: files added, removed or changed (by sha256), files reused as they
    are, and the lines of the small text files that changed (a generation config's prompt, model.yaml)."""
    with handle_errors():
        found = diff_versions(open_registry(registry, token), old, new)
    if as_json:
        print_json(
            {
                "old": found.old.ref,
                "new": found.new.ref,
                "added": [e.model_dump() for e in found.added],
                "removed": [e.model_dump() for e in found.removed],
                "changed": [{"path": b.path, "old_sha256": a.sha256, "new_sha256": b.sha256} for a, b in found.changed],
                "same": [e.model_dump() for e in found.same],
                "text": found.text,
            }
        )
        return
    stdout.print(f"{found.old.ref} -> {found.new.ref}", highlight=False)
    for entry in found.same:
        stdout.print(f"  same     {entry.path} sha256:{entry.sha256[:12]} ({human_size(entry.size)})", highlight=False)
    for label, entries in (("added", found.added), ("removed", found.removed)):
        for entry in entries:
            stdout.print(f"  {label:<8} {entry.path} sha256:{entry.sha256[:12]}", highlight=False)
    for a, b in found.changed:
        stdout.print(f"  changed  {b.path} sha256:{a.sha256[:12]} -> {b.sha256[:12]}", highlight=False)
    for lines in found.text.values():
        if lines:
            stdout.print("\n".join(lines), highlight=False, markup=False)
    if found.identical:
        stdout.print("the two versions hold the same files", highlight=False)
