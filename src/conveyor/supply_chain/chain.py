"""``conveyor verify --supply-chain``: every link from the registry version to the image, checked.

Links, in the order a request for trust crosses them:

1. ``image``: the image exists (pulled if asked) and carries Conveyor's model labels.
2. ``attestations``: its SBOM, provenance and signature are found (locally, or pulled from the
   registry beside the image); a reference that now names another image is a moved tag.
3. ``image-signature``: a trusted key signed this image id.
4. ``provenance``: a trusted key signed a SLSA statement whose subject is this image id, whose
   model digest is the image's and the registry's, and whose SBOM is the image's.
5. ``sbom``: the SBOM inside the image is the one attested and labelled; every package in it
   is pinned with a hash and in the lock the image installed, and its model files are the
   registry version's.
6. ``model-signature``: a trusted key signed the registry version's files (OpenSSF model signing).

Each link passes or fails with a message naming what broke; a link that cannot be checked
because an earlier one broke says so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from conveyor.errors import ChainBroken, ConveyorError
from conveyor.supply_chain import attestations
from conveyor.supply_chain.keys import TrustedKey, short

if TYPE_CHECKING:
    from conveyor.registry.protocol import Registry
    from conveyor.registry.records import ModelVersion
    from conveyor.verify.checks import CheckResult

LockFile = "/opt/conveyor/requirements.txt"
HOW_TO_SIGN = "(conveyor build --sign KEY, or conveyor push --sign KEY)"
LINKS = ("image", "attestations", "image-signature", "provenance", "sbom", "model-signature")
State = Literal["passed", "failed", "skipped"]


@dataclass
class Link:
    name: str
    status: State
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "passed"


@dataclass
class Chain:
    image: str
    links: list[Link] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(link.ok for link in self.links)

    def first_broken(self) -> Link | None:
        return next((link for link in self.links if link.status == "failed"), None)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _Subject:
    """The image as the links see it, gathered once: its id, labels, attestations and files."""

    image: str
    engine: str
    found: str  # the image id
    labels: dict[str, str]
    model_ref: str
    label_digest: str
    have: dict[str, bytes | None] = field(default_factory=dict)  # the attestations, by file name
    registry_version: ModelVersion | None = None
    registry_problem: str | None = None
    sbom_in_image: bytes | None = None
    lock: bytes | None = None

    @property
    def sbom_digest(self) -> str | None:
        return _sha256(self.sbom_in_image) if self.sbom_in_image else None


class _Stop(Exception):
    """A link broke so that the links after it cannot be checked."""

    def __init__(self, link: Link, reason: str) -> None:
        super().__init__(link.message)
        self.link, self.reason = link, reason


def verify_image(
    image: str,
    trusted: list[TrustedKey],
    registry: Registry | None = None,
    engine: str | None = None,
    pull: bool = False,
    tls_verify: bool | None = None,
) -> Chain:
    """Check every link for ``image``; never raises for a broken link (the Chain says which)."""
    from conveyor.containers import container_engine

    chain = Chain(image)
    try:
        subject, link = _check_image(image, engine or container_engine(), pull, tls_verify)
        chain.links.append(link)
        chain.links.append(_check_attestations(subject, pull, tls_verify))
    except _Stop as stop:
        chain.links.append(stop.link)
        chain.links += [Link(name, "skipped", stop.reason) for name in LINKS[len(chain.links) :]]
        return chain
    _read_registry_and_image_files(subject, registry)
    chain.links += [
        _check_image_signature(subject, trusted),
        _check_provenance(subject, trusted),
        _check_sbom(subject),
        _check_model_signature(subject, registry, trusted),
    ]
    return chain


def _check_image(image: str, engine: str, pull: bool, tls_verify: bool | None) -> tuple[_Subject, Link]:
    """1. The image exists (pulled if asked), carries Conveyor's model labels and is still what was built."""
    from conveyor.containers import image_id, image_labels
    from conveyor.containers import pull as pull_image

    found = None if pull else image_id(engine, image)  # --pull checks what the registry serves now
    why = " (pass --pull to fetch it)"
    if pull:
        failure = pull_image(engine, image, tls_verify)
        found = image_id(engine, image)
        why = f": {engine} pull failed: {failure}" if failure else ""
    if found is None:
        raise _Stop(Link("image", "failed", f"{image} is not a local image{why}"), "no image")
    labels = image_labels(engine, image)
    model_name, model_version = labels.get("ai.conveyor.model.name"), labels.get("ai.conveyor.model.version")
    label_digest = labels.get("ai.conveyor.model.digest", "").removeprefix("sha256:")
    if not (model_name and model_version and label_digest):
        message = f"{image} has no ai.conveyor.model.* labels: it was not built by conveyor build"
        raise _Stop(Link("image", "failed", message), "not a Conveyor image")
    subject = _Subject(image, engine, found, labels, f"{model_name}:{model_version}", label_digest)
    moved_from = attestations.known_refs().get(image)
    if moved_from and moved_from != found:
        message = (
            f"{image} now names image sha256:{found[:12]}, but conveyor built or pushed it as "
            f"sha256:{moved_from[:12]}: the tag was moved to another image"
        )
        return subject, Link("image", "failed", message)
    return subject, Link(
        "image", "passed", f"sha256:{found[:12]} serves {subject.model_ref} (sha256:{label_digest[:12]})"
    )


def _check_attestations(subject: _Subject, pull: bool, tls_verify: bool | None) -> Link:
    """2. Its SBOM, provenance and signature are found, here or pulled from beside the image."""
    found = subject.found
    subject.have = {name: attestations.load(found, name) for name in attestations.FILES}
    if not any(subject.have.values()) and pull:
        attestations.pull(subject.image, found, subject.engine, tls_verify)
        subject.have = {name: attestations.load(found, name) for name in attestations.FILES}
    if not any(subject.have.values()):
        message = f"no SBOM, provenance or signature for image sha256:{found[:12]}" + (
            "" if pull else " here (pass --pull to fetch them from the registry)"
        )
        raise _Stop(Link("attestations", "failed", message), "no attestations")
    return Link("attestations", "passed", "found: " + ", ".join(n for n, content in subject.have.items() if content))


def _read_registry_and_image_files(subject: _Subject, registry: Registry | None) -> None:
    """The registry's version of the image's model, and the SBOM and lock inside the image."""
    from conveyor.containers import copy_out
    from conveyor.supply_chain import sbom

    if registry is not None:
        try:
            subject.registry_version = registry.resolve(subject.model_ref)
        except ConveyorError as exc:
            subject.registry_problem = f"the registry cannot show {subject.model_ref}: {exc}"
    try:
        copied = copy_out(subject.engine, subject.image, {"sbom": sbom.SBOM_IN_IMAGE, "lock": LockFile})
        subject.sbom_in_image, subject.lock = copied[sbom.SBOM_IN_IMAGE], copied[LockFile]
    except ConveyorError as exc:
        subject.registry_problem = subject.registry_problem or str(exc)


def _check_image_signature(subject: _Subject, trusted: list[TrustedKey]) -> Link:
    """3. A trusted key signed this image id."""
    from conveyor.supply_chain import image_signature

    signature = subject.have[attestations.SIGNATURE]
    if signature is None:
        return Link("image-signature", "failed", f"{subject.image} is not signed {HOW_TO_SIGN}")
    try:
        reference, key = image_signature.verify(json.loads(signature), subject.found, trusted, subject.image)
    except (ChainBroken, ValueError) as exc:
        return Link("image-signature", "failed", str(exc))
    return Link("image-signature", "passed", f"signed as {reference} by key {short(key)}")


def _check_provenance(subject: _Subject, trusted: list[TrustedKey]) -> Link:
    """4. A trusted key signed a SLSA statement about this image id, its model digest (the registry's
    too) and its SBOM."""
    from conveyor.supply_chain import envelopes, provenance

    statement = subject.have[attestations.PROVENANCE]
    if statement is None:
        return Link("provenance", "failed", f"no provenance for image sha256:{subject.found[:12]}")
    try:
        payload, key = envelopes.verify(
            json.loads(statement), envelopes.IN_TOTO, trusted, f"the provenance of {subject.image}"
        )
    except (ChainBroken, ValueError) as exc:
        return Link("provenance", "failed", str(exc))
    problems = provenance.check(payload, subject.found, subject.label_digest, subject.sbom_digest)
    registered = subject.registry_version
    if registered is not None and registered.digest != subject.label_digest:
        problems.append(
            f"the registry's {subject.model_ref} has digest {registered.digest[:12]}, "
            f"the image was built from {subject.label_digest[:12]}"
        )
    if problems:
        return Link("provenance", "failed", "the provenance does not match: " + "; ".join(problems))
    source = provenance.dependency(payload, "source") or {}
    commit = source.get("digest", {}).get("gitCommit")
    origin = f" from {source.get('uri')}@{commit[:12]}" if commit else ""
    return Link("provenance", "passed", f"SLSA provenance signed by key {short(key)}: {subject.model_ref}{origin}")


def _check_sbom(subject: _Subject) -> Link:
    """5. The SBOM inside the image is the attested and labelled one, pinned, in the lock, and lists
    the registry version's model files."""
    from conveyor.supply_chain import sbom

    label_sbom = subject.labels.get(sbom.SBOM_LABEL, "").removeprefix("sha256:")
    stored = subject.have[attestations.SBOM]
    if subject.sbom_in_image is None:
        return Link("sbom", "failed", f"{subject.image} carries no SBOM at {sbom.SBOM_IN_IMAGE}")
    if label_sbom != subject.sbom_digest:
        return Link("sbom", "failed", f"the SBOM in {subject.image} is not the one its label {sbom.SBOM_LABEL} names")
    if stored is not None and _sha256(stored) != subject.sbom_digest:
        return Link("sbom", "failed", "the SBOM kept beside the image differs from the one inside it")
    try:
        facts = sbom.read_sbom(subject.sbom_in_image)
        problems = sbom.check_sbom(facts, sbom.parse_lock(subject.lock.decode() if subject.lock else ""))
    except (ValueError, KeyError) as exc:
        return Link("sbom", "failed", f"the SBOM does not hold: it does not parse: {exc}")
    if facts.model_digest != subject.label_digest:
        problems.append("its model digest is not the image's")
    if subject.registry_version is not None:
        files = {f.path: f.sha256 for f in subject.registry_version.files}
        if facts.model_files != files:
            problems.append(f"its model files are not those of the registry's {subject.model_ref}")
    if problems:
        return Link("sbom", "failed", "the SBOM does not hold: " + "; ".join(problems))
    return Link("sbom", "passed", f"{len(facts.packages)} packages, all pinned with hashes and in the image's lock")


def _check_model_signature(subject: _Subject, registry: Registry | None, trusted: list[TrustedKey]) -> Link:
    """6. A trusted key signed the registry version's files (OpenSSF model signing)."""
    from conveyor.supply_chain.model_signature import verify_stored

    if registry is None or subject.registry_version is None:
        reason = subject.registry_problem or f"no registry to check {subject.model_ref}'s signature in"
        return Link("model-signature", "failed", reason)
    try:
        _, key = verify_stored(registry, subject.model_ref, trusted)
    except ChainBroken as exc:
        return Link("model-signature", "failed", str(exc))
    return Link("model-signature", "passed", f"{subject.model_ref} signed by key {short(key)} (OpenSSF model signing)")


def check_results(
    image: str, trusted_key: list[Path] | None, pull: bool = False, tls_verify: bool | None = None
) -> list[CheckResult]:
    """The chain's links as check results (so the table, JUnit and JSON reports are the usual ones)."""
    import time

    from conveyor.registry.config import open_registry
    from conveyor.supply_chain.keys import require_trusted_keys
    from conveyor.verify.checks import CheckResult

    started = time.perf_counter()
    chain = verify_image(image, require_trusted_keys(trusted_key), open_registry(), pull=pull, tls_verify=tls_verify)
    each = (time.perf_counter() - started) / max(1, len(chain.links))
    return [
        CheckResult(f"supply-chain.{link.name}", "supply-chain", link.status, each, link.message)
        for link in chain.links
    ]
