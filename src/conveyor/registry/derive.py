"""A new version made from another's files, some of them replaced: the rest reused by digest, never copied.

A generative version whose prompt changed keeps the same gigabytes of weights: the registry stores
blobs by sha256, so the new version lists the weights' blob as the old one does and only the small
files it replaces are hashed and stored.  Nothing is downloaded, on a local registry or a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from conveyor.digest import sha256_file
from conveyor.registry.base import Silent
from conveyor.registry.protocol import Registry
from conveyor.registry.records import FileEntry, Lineage, ModelVersion, NewVersion
from conveyor.registry.refs import check_file_name


def derive_version(
    reg: Registry,
    base: ModelVersion,
    name: str,
    replaced: Iterable[tuple[str, Path]],
    *,
    description: str = "",
    properties: dict[str, str] | None = None,
    aliases: Sequence[str] = (),
    lineage: Lineage | None = None,
) -> ModelVersion:
    """The next version of ``name``: ``base``'s files with ``replaced`` (path in version, local file)
    stored and put in their place; its lineage names ``base`` (``derived_from``)."""
    files = {entry.path: entry for entry in base.files}
    for relative, local in replaced:
        check_file_name(relative)
        digest, size = sha256_file(local)
        if not reg.blob_exists(digest):
            reg.store_blob(digest, local, size, Silent())
        files[relative] = FileEntry(path=relative, sha256=digest, size=size)
    lineage = (lineage or Lineage()).model_copy(update={"derived_from": base.ref})
    new = NewVersion(
        description=description,
        files=sorted(files.values(), key=lambda entry: entry.path),
        framework=base.framework,
        framework_version=base.framework_version,
        properties={**base.properties, **(properties or {})},
        lineage=lineage,
        aliases=list(aliases),
    )
    return reg.create_version(name, new)
