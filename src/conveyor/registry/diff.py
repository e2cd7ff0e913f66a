"""What changed between two versions: files added, removed or changed (by digest), and the text of
the small files people edit (a generation config's prompt, a model.yaml) as a unified diff.

``conveyor models diff chat:3 chat:4`` shows a prompt-only version as what it is: the weights' blob
the same, the ``generation.yaml`` lines that changed.  Only blobs of small text files are read.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from conveyor.registry.protocol import Registry
from conveyor.registry.records import FileEntry, ModelVersion

TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".md", ".jinja", ".j2")
MAX_TEXT_BYTES = 256 * 1024


@dataclass
class VersionDiff:
    old: ModelVersion
    new: ModelVersion
    added: list[FileEntry] = field(default_factory=list)
    removed: list[FileEntry] = field(default_factory=list)
    changed: list[tuple[FileEntry, FileEntry]] = field(default_factory=list)
    same: list[FileEntry] = field(default_factory=list)
    text: dict[str, list[str]] = field(default_factory=dict)  # path -> unified diff lines (changed text files)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _readable(entry: FileEntry) -> bool:
    return entry.path.endswith(TEXT_SUFFIXES) and entry.size <= MAX_TEXT_BYTES


def _lines(reg: Registry, entry: FileEntry | None) -> list[str]:
    if entry is None:
        return []
    return b"".join(reg.open_blob(entry.sha256)).decode(errors="replace").splitlines(keepends=True)


def diff_versions(reg: Registry, old_ref: str, new_ref: str) -> VersionDiff:
    """The difference from ``old_ref`` to ``new_ref`` (any two versions, of one model or two)."""
    old, new = reg.resolve(old_ref), reg.resolve(new_ref)
    before = {entry.path: entry for entry in old.files}
    after = {entry.path: entry for entry in new.files}
    found = VersionDiff(old, new)
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        if a is None and b is not None:
            found.added.append(b)
        elif b is None and a is not None:
            found.removed.append(a)
        elif a is not None and b is not None:
            if a.sha256 == b.sha256:
                found.same.append(b)
                continue
            found.changed.append((a, b))
        if all(entry is None or _readable(entry) for entry in (a, b)):
            lines = difflib.unified_diff(
                _lines(reg, a), _lines(reg, b), f"{old.ref}/{path}", f"{new.ref}/{path}", lineterm=""
            )
            found.text[path] = [line.rstrip("\n") for line in lines]
    return found
