"""Build provenance: an in-toto statement with the SLSA v1 predicate, signed in a DSSE envelope.

Subject: the image id (config digest).  Resolved dependencies: the registry version and its
digest, the source repository and commit, the base image's id and the SBOM's digest.  External
parameters: what the user asked for (model, tag, platform, base image); internal: the builder.
``check`` reads a verified statement back and names what does not match the image at hand.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor import __version__

STATEMENT = "https://in-toto.io/Statement/v1"
SLSA = "https://slsa.dev/provenance/v1"
# The build type names what the parameters mean (docs/supply-chain.md describes them).
BUILD_TYPE = "https://pypi.org/project/conveyor-ml/#supply-chain-build-v1"


@dataclass(frozen=True)
class BuildFacts:
    image: str
    image_id: str
    model_ref: str
    model_digest: str
    platform: str
    base_image: str
    base_image_id: str | None
    builder: str
    builder_version: str | None
    sbom_digest: str
    source: str | None
    revision: str | None
    started: datetime
    finished: datetime


def statement(facts: BuildFacts) -> dict[str, Any]:
    dependencies: list[dict[str, Any]] = [
        {"name": "model", "uri": f"conveyor-registry:{facts.model_ref}", "digest": {"sha256": facts.model_digest}},
        {"name": "sbom", "uri": "sbom.cdx.json", "digest": {"sha256": facts.sbom_digest}},
    ]
    if facts.base_image_id:
        dependencies.append({"name": "base-image", "uri": facts.base_image, "digest": {"sha256": facts.base_image_id}})
    if facts.source or facts.revision:
        source: dict[str, Any] = {"name": "source", "uri": facts.source or "(unknown)"}
        if facts.revision:
            source["digest"] = {"gitCommit": facts.revision}
        dependencies.append(source)
    return {
        "_type": STATEMENT,
        "subject": [{"name": facts.image, "digest": {"sha256": facts.image_id}}],
        "predicateType": SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "model": facts.model_ref,
                    "tag": facts.image,
                    "platform": facts.platform,
                    "baseImage": facts.base_image,
                },
                "internalParameters": {"builder": facts.builder, "builderVersion": facts.builder_version},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": f"conveyor/{__version__}+{facts.builder}", "version": {"conveyor": __version__}},
                "metadata": {
                    "invocationId": str(uuid.uuid4()),
                    "startedOn": facts.started.astimezone(UTC).isoformat(),
                    "finishedOn": facts.finished.astimezone(UTC).isoformat(),
                },
            },
        },
    }


def dependency(payload: dict[str, Any], name: str) -> dict[str, Any] | None:
    for item in payload.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", []):
        if item.get("name") == name:
            return item
    return None


def check(payload: dict[str, Any], image_id: str, model_digest: str, sbom_digest: str | None) -> list[str]:
    """What the verified statement says that does not match this image ([] when it all holds)."""
    problems = []
    if payload.get("_type") != STATEMENT or payload.get("predicateType") != SLSA:
        problems.append(f"it is not an in-toto SLSA provenance ({payload.get('predicateType')})")
    subjects = [s.get("digest", {}).get("sha256") for s in payload.get("subject", [])]
    if image_id not in subjects:
        built = ", ".join(f"sha256:{s[:12]}" for s in subjects if s) or "nothing"
        problems.append(f"it describes another build ({built}), not image sha256:{image_id[:12]}")
    model = dependency(payload, "model") or {}
    if model.get("digest", {}).get("sha256") != model_digest:
        problems.append(
            f"its model {model.get('uri', '?')} has digest {str(model.get('digest', {}).get('sha256'))[:12]}, "
            f"the image carries {model_digest[:12]}"
        )
    sbom = dependency(payload, "sbom") or {}
    if sbom_digest and sbom.get("digest", {}).get("sha256") != sbom_digest:
        problems.append("its SBOM digest is not the image's SBOM")
    return problems
