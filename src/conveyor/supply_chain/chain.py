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
from typing import Literal

from conveyor.errors import ChainBroken, ConveyorError
from conveyor.supply_chain import attestations
from conveyor.supply_chain.keys import TrustedKey, short

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


def verify_image(
    image: str,
    trusted: list[TrustedKey],
    registry=None,  # type: ignore[no-untyped-def]
    engine: str | None = None,
    pull: bool = False,
    tls_verify: bool | None = None,
) -> Chain:
    """Check every link for ``image``; never raises for a broken link (the Chain says which)."""
    from conveyor.containers import container_engine, copy_out, image_id, image_labels
    from conveyor.containers import pull as pull_image

    chain = Chain(image)

    def add(name: str, status: State, message: str) -> None:
        chain.links.append(Link(name, status, message))

    def skip_rest(reason: str) -> Chain:
        for name in LINKS[len(chain.links) :]:
            add(name, "skipped", reason)
        return chain

    engine = engine or container_engine()
    found = None if pull else image_id(engine, image)  # --pull checks what the registry serves now
    why = " (pass --pull to fetch it)"
    if pull:
        failure = pull_image(engine, image, tls_verify)
        found = image_id(engine, image)
        why = f": {engine} pull failed: {failure}" if failure else ""
    if found is None:
        add("image", "failed", f"{image} is not a local image{why}")
        return skip_rest("no image")
    labels = image_labels(engine, image)
    model_name, model_version = labels.get("ai.conveyor.model.name"), labels.get("ai.conveyor.model.version")
    label_digest = labels.get("ai.conveyor.model.digest", "").removeprefix("sha256:")
    if not (model_name and model_version and label_digest):
        add("image", "failed", f"{image} has no ai.conveyor.model.* labels: it was not built by conveyor build")
        return skip_rest("not a Conveyor image")
    model_ref = f"{model_name}:{model_version}"
    moved_from = attestations.known_refs().get(image)
    if moved_from and moved_from != found:
        add(
            "image",
            "failed",
            f"{image} now names image sha256:{found[:12]}, but conveyor built or pushed it as "
            f"sha256:{moved_from[:12]}: the tag was moved to another image",
        )
    else:
        add("image", "passed", f"sha256:{found[:12]} serves {model_ref} (sha256:{label_digest[:12]})")

    # 2. attestations
    have = {name: attestations.load(found, name) for name in attestations.FILES}
    if not any(have.values()) and pull:
        attestations.pull(image, found, engine, tls_verify)
        have = {name: attestations.load(found, name) for name in attestations.FILES}
    if not any(have.values()):
        add(
            "attestations",
            "failed",
            f"no SBOM, provenance or signature for image sha256:{found[:12]}"
            + ("" if pull else " here (pass --pull to fetch them from the registry)"),
        )
        return skip_rest("no attestations")
    add("attestations", "passed", "found: " + ", ".join(name for name, content in have.items() if content))

    # 3. image signature
    from conveyor.supply_chain import envelopes, image_signature, provenance, sbom

    if have[attestations.SIGNATURE] is None:
        add(
            "image-signature",
            "failed",
            f"{image} is not signed (conveyor build --sign KEY, or conveyor push --sign KEY)",
        )
    else:
        try:
            reference, key = image_signature.verify(json.loads(have[attestations.SIGNATURE]), found, trusted, image)
            add("image-signature", "passed", f"signed as {reference} by key {short(key)}")
        except (ChainBroken, ValueError) as exc:
            add("image-signature", "failed", str(exc))

    # 4. provenance (its model digest checked against the registry as well)
    registry_version = None
    registry_problem = None
    if registry is not None:
        try:
            registry_version = registry.resolve(model_ref)
        except ConveyorError as exc:
            registry_problem = f"the registry cannot show {model_ref}: {exc}"
    sbom_in_image: bytes | None = None
    lock: bytes | None = None
    try:
        copied = copy_out(engine, image, {"sbom": sbom.SBOM_IN_IMAGE, "lock": LockFile})
        sbom_in_image, lock = copied[sbom.SBOM_IN_IMAGE], copied[LockFile]
    except ConveyorError as exc:
        registry_problem = registry_problem or str(exc)
    sbom_digest = _sha256(sbom_in_image) if sbom_in_image else None
    if have[attestations.PROVENANCE] is None:
        add("provenance", "failed", f"no provenance for image sha256:{found[:12]}")
    else:
        try:
            payload, key = envelopes.verify(
                json.loads(have[attestations.PROVENANCE]), envelopes.IN_TOTO, trusted, f"the provenance of {image}"
            )
            problems = provenance.check(payload, found, label_digest, sbom_digest)
            if registry_version is not None and registry_version.digest != label_digest:
                problems.append(
                    f"the registry's {model_ref} has digest {registry_version.digest[:12]}, "
                    f"the image was built from {label_digest[:12]}"
                )
            if problems:
                add("provenance", "failed", "the provenance does not match: " + "; ".join(problems))
            else:
                source = provenance.dependency(payload, "source") or {}
                commit = source.get("digest", {}).get("gitCommit")
                add(
                    "provenance",
                    "passed",
                    f"SLSA provenance signed by key {short(key)}: {model_ref}"
                    + (f" from {source.get('uri')}@{commit[:12]}" if commit else ""),
                )
        except (ChainBroken, ValueError) as exc:
            add("provenance", "failed", str(exc))

    # 5. SBOM
    label_sbom = labels.get(sbom.SBOM_LABEL, "").removeprefix("sha256:")
    stored = have[attestations.SBOM]
    if sbom_in_image is None:
        add("sbom", "failed", f"{image} carries no SBOM at {sbom.SBOM_IN_IMAGE}")
    elif label_sbom != sbom_digest:
        add("sbom", "failed", f"the SBOM in {image} is not the one its label {sbom.SBOM_LABEL} names")
    elif stored is not None and _sha256(stored) != sbom_digest:
        add("sbom", "failed", "the SBOM kept beside the image differs from the one inside it")
    else:
        try:
            facts = sbom.read_sbom(sbom_in_image)
            problems = sbom.check_sbom(facts, sbom.parse_lock(lock.decode() if lock else ""))
        except (ValueError, KeyError) as exc:
            problems = [f"it does not parse: {exc}"]
            facts = None
        if facts is not None and facts.model_digest != label_digest:
            problems.append("its model digest is not the image's")
        if facts is not None and registry_version is not None:
            files = {f.path: f.sha256 for f in registry_version.files}
            if facts.model_files != files:
                problems.append(f"its model files are not those of the registry's {model_ref}")
        if problems:
            add("sbom", "failed", "the SBOM does not hold: " + "; ".join(problems))
        else:
            add("sbom", "passed", f"{len(facts.packages)} packages, all pinned with hashes and in the image's lock")

    # 6. model signature
    if registry is None or registry_version is None:
        add("model-signature", "failed", registry_problem or f"no registry to check {model_ref}'s signature in")
    else:
        from conveyor.supply_chain.model_signature import verify_stored

        try:
            _, key = verify_stored(registry, model_ref, trusted)
            add("model-signature", "passed", f"{model_ref} signed by key {short(key)} (OpenSSF model signing)")
        except ChainBroken as exc:
            add("model-signature", "failed", str(exc))
    return chain


def check_results(  # type: ignore[type-arg]
    image: str, trusted_key: list[Path] | None, pull: bool = False, tls_verify: bool | None = None
) -> list:
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
