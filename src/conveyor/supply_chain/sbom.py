"""The image's CycloneDX SBOM: every Python package it installs, the model files, the server.

Written at build time from the same pinned, hashed wheel set the image installs offline
(``packaging/requirements.py``), so the SBOM lists exactly what ``pip install --require-hashes``
will put in the image: name, exact version, purl and the wheel's sha256.  The model is one
``machine-learning-model`` component (the registry's version digest) with each file as a
``file`` component carrying its sha256.  ``check_sbom`` reads one back and names every package
that is not pinned, not hashed, or not in the image's lock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from conveyor import __version__
from conveyor.extras import needs
from conveyor.packaging.requirements import Pin
from conveyor.registry.records import ModelVersion

SBOM_FILE = "sbom.cdx.json"
SBOM_IN_IMAGE = "/etc/conveyor/sbom.cdx.json"
SBOM_LABEL = "ai.conveyor.sbom.digest"


def write_sbom(version: ModelVersion, pins: list[Pin], image_name: str) -> str:
    """The SBOM as CycloneDX 1.6 JSON."""
    with needs("supply-chain", "the image's SBOM (conveyor package and build)"):
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from packageurl import PackageURL

    # Deterministic: the same version and wheels give the same SBOM, so its image layer is cached
    # and two builds of one version carry byte-identical SBOMs.
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"conveyor:{version.digest}:" + ",".join(p.sha256 for p in pins))
    bom = Bom(serial_number=serial)
    bom.metadata.timestamp = version.created_at
    bom.metadata.component = Component(type=ComponentType.CONTAINER, name=image_name, bom_ref="image")
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="conveyor", version=__version__))
    for pin in pins:
        bom.components.add(
            Component(
                type=ComponentType.LIBRARY,
                name=pin.name,
                version=pin.version,
                purl=PackageURL("pypi", name=pin.name, version=pin.version),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=pin.sha256)],
                bom_ref=f"pypi:{pin.name}",
                properties=[Property(name="conveyor:wheel", value=pin.wheel)],
            )
        )
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=version.name,
        version=str(version.version),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=version.digest)],
        bom_ref="model",
        properties=[Property(name="conveyor:registry-ref", value=version.ref)],
    )
    for entry in version.files:
        model.components.add(
            Component(
                type=ComponentType.FILE,
                name=entry.path,
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)],
                bom_ref=f"model-file:{entry.path}",
            )
        )
    bom.components.add(model)
    bom.components.add(
        Component(type=ComponentType.APPLICATION, name="conveyor-server", version=__version__, bom_ref="server")
    )
    bom.register_dependency(bom.metadata.component, list(bom.components))
    return JsonV1Dot6(bom).output_as_string(indent=2)


@dataclass(frozen=True)
class SbomFacts:
    packages: dict[str, tuple[str | None, str | None]]  # name -> (version, sha256)
    model_digest: str | None
    model_files: dict[str, str]


def _sha256(component: dict[str, Any]) -> str | None:
    for item in component.get("hashes") or []:
        if item.get("alg") == "SHA-256":
            return item.get("content")
    return None


def read_sbom(text: str | bytes) -> SbomFacts:
    document = json.loads(text)
    packages: dict[str, tuple[str | None, str | None]] = {}
    model_digest, files = None, {}
    for component in document.get("components") or []:
        if component.get("type") == "library":
            packages[component["name"]] = (component.get("version"), _sha256(component))
        elif component.get("type") == "machine-learning-model":
            model_digest = _sha256(component)
            files = {c["name"]: _sha256(c) or "" for c in component.get("components") or []}
    return SbomFacts(packages, model_digest, files)


def parse_lock(text: str) -> dict[str, tuple[str, set[str]]]:
    """``requirements.txt`` with hashes -> name -> (version, sha256s)."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, set[str]]] = {}
    joined = text.replace("\\\n", " ")
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        hashes = {o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")}
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def check_sbom(facts: SbomFacts, lock: dict[str, tuple[str, set[str]]]) -> list[str]:
    """What is wrong with the SBOM's packages against the lock the image installed ([] when all hold)."""
    from packaging.utils import canonicalize_name

    problems = []
    for name, (version, sha256) in sorted(facts.packages.items()):
        pinned = lock.get(canonicalize_name(name))
        if not version or not sha256:
            problems.append(f"{name} is not pinned (version {version or 'missing'}, sha256 {sha256 or 'missing'})")
        elif pinned is None:
            problems.append(f"{name}=={version} is not in the image's lock")
        elif pinned[0] != version or (pinned[1] and sha256 not in pinned[1]):
            problems.append(f"{name}=={version} differs from the lock ({name}=={pinned[0]} with other hashes)")
    missing = sorted(set(lock) - {canonicalize_name(n) for n in facts.packages})
    if missing:
        problems.append(f"the SBOM leaves out installed packages: {', '.join(missing)}")
    return problems
