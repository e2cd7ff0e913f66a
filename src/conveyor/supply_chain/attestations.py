"""Where an image's SBOM, provenance and signature are kept, and how they travel with it.

Locally: ``$CONVEYOR_HOME/attestations/<image id>/`` (the image id is its config digest, the
same after a push and a pull), plus an index of which id each built or pushed reference had,
so a tag moved to another image is named as such.  In an OCI registry: a tiny ``FROM scratch``
image holding the files, pushed as ``<repository>:sha256-<image id>.att`` (the tag convention
cosign uses for attachments), with the same engine and credentials as the image itself, so
``conveyor verify --supply-chain`` on a fresh runner can pull them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from conveyor.atomic import write_atomic
from conveyor.errors import ConveyorError
from conveyor.home import conveyor_home

SBOM = "sbom.cdx.json"
PROVENANCE = "provenance.dsse.json"
SIGNATURE = "signature.dsse.json"
FILES = (SBOM, PROVENANCE, SIGNATURE)
IN_IMAGE = "/attestations"


def root() -> Path:
    return conveyor_home() / "attestations"


def folder(image_id: str) -> Path:
    return root() / image_id


def save(image_id: str, name: str, content: str | bytes) -> Path:
    path = folder(image_id) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, content)
    return path


def load(image_id: str, name: str) -> bytes | None:
    path = folder(image_id) / name
    return path.read_bytes() if path.is_file() else None


def _index() -> Path:
    return root() / "refs.json"


def remember(reference: str, image_id: str) -> None:
    """Record that ``reference`` was built or pushed as ``image_id``."""
    known = known_refs()
    known[reference] = image_id
    _index().parent.mkdir(parents=True, exist_ok=True)
    write_atomic(_index(), json.dumps(known, indent=2, sort_keys=True))


def known_refs() -> dict[str, str]:
    try:
        return json.loads(_index().read_text())
    except (OSError, ValueError):
        return {}


def repository(reference: str) -> str:
    """``host:5000/org/name:3`` -> ``host:5000/org/name``."""
    name, colon, tag = reference.rpartition(":")
    return name if colon and "/" not in tag else reference


def attachment_ref(reference: str, image_id: str) -> str:
    return f"{repository(reference)}:sha256-{image_id}.att"


def push(reference: str, image_id: str, engine: str, tls_verify: bool | None = None) -> str:
    """Push the attestations of ``image_id`` next to ``reference``; returns the attachment's reference."""
    from conveyor.packaging.builders import build
    from conveyor.packaging.builders import push as push_image

    source = folder(image_id)
    if not source.is_dir():
        raise ConveyorError(f"no attestations for image {image_id[:12]} to push")
    target = attachment_ref(reference, image_id)
    with tempfile.TemporaryDirectory(prefix="conveyor-att-") as tmp:
        context = Path(tmp)
        for name in FILES:
            if (source / name).is_file():
                shutil.copy(source / name, context / name)
        (context / "Dockerfile").write_text(f"FROM scratch\nCOPY *.json {IN_IMAGE}/\n")
        build(context, target, engine)
    push_image(target, engine, None, tls_verify)
    return target


def pull(reference: str, image_id: str, engine: str, tls_verify: bool | None = None) -> bool:
    """Fetch the attestations pushed beside ``reference`` into the local store; False when there are none."""
    from conveyor.containers import copy_out
    from conveyor.containers import pull as pull_image

    target = attachment_ref(reference, image_id)
    if pull_image(engine, target, tls_verify) is not None:
        return False
    found = copy_out(engine, target, {name: f"{IN_IMAGE}/{name}" for name in FILES})
    for name in FILES:
        content = found[f"{IN_IMAGE}/{name}"]
        if content is not None:
            save(image_id, name, content)
    return True
