"""What ``conveyor build`` and ``conveyor push`` leave behind for the chain: SBOM, provenance, signature.

``record_build`` runs after the builder: it keeps the SBOM, writes the provenance of this
build (signed when a key is given, else an unsigned envelope that verification refuses) and,
with a key, signs the image.  ``sign_pushed`` signs the pushed reference and sends the
attestations to the registry beside the image.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from conveyor.packaging.builders import BuiltImage
from conveyor.packaging.context import BuildContext, source_repository
from conveyor.supply_chain import attestations, envelopes, image_signature, provenance
from conveyor.supply_chain.keys import SigningKey
from conveyor.supply_chain.sbom import SBOM_FILE


@dataclass(frozen=True)
class BuildRecord:
    image_id: str
    folder: Path
    signed_by: str | None


def _engine(builder: str) -> str:
    """The command whose image store holds what ``builder`` built (buildah's: podman's)."""
    from conveyor.engines import get_engine

    return get_engine(builder).store


def _version_of(engine: str) -> str | None:
    try:
        result = subprocess.run([engine, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def record_build(
    context: BuildContext, image: BuiltImage, started: datetime, finished: datetime, key: SigningKey | None
) -> BuildRecord:
    from conveyor.containers import image_id

    engine = _engine(image.builder)
    built_id = image.image_id.removeprefix("sha256:")
    attestations.save(built_id, attestations.SBOM, (context.path / "sbom" / SBOM_FILE).read_text())
    labels = context.labels
    facts = provenance.BuildFacts(
        image=image.reference,
        image_id=built_id,
        model_ref=context.version.ref,
        model_digest=context.version.digest,
        platform=context.platform,
        base_image=context.base_image,
        base_image_id=image_id(engine, context.base_image),
        builder=image.builder,
        builder_version=_version_of(image.builder),
        sbom_digest=context.sbom_digest,
        source=labels.get("org.opencontainers.image.source") or source_repository(),
        revision=labels.get("org.opencontainers.image.revision"),
        started=started,
        finished=finished,
    )
    statement = provenance.statement(facts)
    envelope = (
        envelopes.sign(statement, envelopes.IN_TOTO, key) if key else envelopes.unsigned(statement, envelopes.IN_TOTO)
    )
    attestations.save(built_id, attestations.PROVENANCE, json.dumps(envelope, indent=2))
    if key is not None:
        signature = image_signature.sign(image.reference, built_id, labels, key)
        attestations.save(built_id, attestations.SIGNATURE, json.dumps(signature, indent=2))
    attestations.remember(image.reference, built_id)
    return BuildRecord(built_id, attestations.folder(built_id), key.key_id if key else None)


def sign_pushed(
    local: str, pushed: str, builder: str, key: SigningKey | None, tls_verify: bool | None = None
) -> tuple[str, str | None]:
    """Sign ``pushed`` (with a key) and push the attestations beside it: (the attachment, the signer)."""
    from conveyor.containers import image_id, image_labels
    from conveyor.errors import ConveyorError

    engine = _engine(builder)
    found = image_id(engine, local)
    if found is None:
        raise ConveyorError(f"{local} is not a local image")
    if key is not None:
        signature = image_signature.sign(pushed, found, image_labels(engine, local), key)
        attestations.save(found, attestations.SIGNATURE, json.dumps(signature, indent=2))
    attestations.remember(pushed, found)
    if not attestations.folder(found).is_dir():
        return "", key.key_id if key else None
    return attestations.push(pushed, found, engine, tls_verify), key.key_id if key else None
