"""The registry in the dashboard: models, a model's versions (paged), one version in full.

What a page shows is what ``conveyor models list|versions|show`` print, read through the same
``Registry`` protocol, so a remote registry server works like the embedded one.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from starlette.requests import Request

from conveyor.errors import ConveyorError, InvalidInput, NotFound
from conveyor.registry.protocol import Registry
from conveyor.registry.records import ModelVersion
from conveyor.registry.refs import parse_version

PAGE_SIZE = 50


def page_of(request: Request, total: int, size: int = PAGE_SIZE) -> tuple[int, int]:
    """(page number from ?page=, number of pages); an out-of-range page is a clear 422."""
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"invalid page {raw!r}: pages are 1, 2, 3, ...")
    pages = max(1, math.ceil(total / size))
    page = int(raw)
    if page > pages:
        raise NotFound(f"page {page} does not exist: there are {pages}")
    return page, pages


def models_context(registry: Registry, request: Request) -> dict[str, Any]:
    query = request.query_params.get("q", "").strip().lower()
    models = [m for m in registry.list_models() if query in m.name.lower() or query in m.description.lower()]
    models.sort(key=lambda m: m.updated_at, reverse=True)
    page, pages = page_of(request, len(models))
    return {
        "models": models[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "total": len(models),
        "q": query,
        "page": page,
        "pages": pages,
    }


def model_context(registry: Registry, request: Request, name: str) -> dict[str, Any]:
    model = registry.get_model(name)
    versions = sorted(registry.list_versions(name, include_archived=True), key=lambda v: v.version, reverse=True)
    page, pages = page_of(request, len(versions))
    return {
        "model": model,
        "versions": versions[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "total": len(versions),
        "page": page,
        "pages": pages,
    }


class Signatures:
    """ONNX signatures by file digest: read once from the model file's header, kept in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_digest: dict[str, dict[str, Any] | None] = {}

    def of(self, registry: Registry, version: ModelVersion) -> dict[str, Any] | None:
        onnx_files = [f for f in version.files if f.path.endswith(".onnx")]
        if not onnx_files:
            return None
        entry = onnx_files[0]
        with self._lock:
            if entry.sha256 in self._by_digest:
                return self._by_digest[entry.sha256]
        from conveyor.registry.onnx_info import read_signature

        _, folder = registry.cached(version.ref)
        try:
            signature: dict[str, Any] | None = {"file": entry.path, **read_signature(Path(folder) / entry.path)}
        except (OSError, ValueError) as exc:
            signature = {"file": entry.path, "error": f"could not read the ONNX header: {exc}"}
        with self._lock:
            self._by_digest[entry.sha256] = signature
        return signature


def version_context(registry: Registry, signatures: Signatures, name: str, number: str) -> dict[str, Any]:
    version = registry.resolve(f"{name}:{parse_version(number)}")
    run_link = None
    if version.lineage.run_id:
        from conveyor.pipeline.history import load_run

        try:
            load_run(version.lineage.run_id)
            run_link = f"/pipelines/runs/{version.lineage.run_id}"
        except NotFound:
            run_link = None
    params = version.properties.get("optimization_params")
    return {
        "version": version,
        "signature": signatures.of(registry, version),
        "run_link": run_link,
        "optimization_params": json.loads(params) if params else None,
        "images": [_image_state(version, image) for image in _images(version)],
        "rollouts": _rollouts_of(version),
    }


def _images(version: ModelVersion) -> list[str]:
    """Images known to carry this version: the ``image`` tag ``conveyor build --push`` sets."""
    return [value for key, value in version.tags.items() if key == "image"]


def _image_state(version: ModelVersion, image: str) -> dict[str, str | None]:
    """What the tag names on this machine now: its image id, and whether that image carries this version.

    A tag is a pointer that can move; the label ``ai.conveyor.model.digest`` of the image it names
    now says whether it still serves these files (``conveyor verify --supply-chain`` judges every
    link: signatures, provenance, SBOM)."""
    import shutil

    from conveyor import containers

    engine = shutil.which("podman") or shutil.which("docker")
    found = containers.image_id(engine, image) if engine else None
    if engine is None or found is None:
        return {"ref": image, "id": None, "state": "unknown", "note": "not on this machine: pull it to check it"}
    try:
        label = containers.image_labels(engine, image).get("ai.conveyor.model.digest", "")
    except ConveyorError:
        label = ""
    if label == f"sha256:{version.digest}":
        return {"ref": image, "id": found, "state": "passed", "note": f"carries {version.ref}"}
    said = f"its label says model {label[:19]}" if label else "it is not a Conveyor image of this model"
    return {"ref": image, "id": found, "state": "failed", "note": f"the tag now names another image: {said}"}


def _rollouts_of(version: ModelVersion) -> list[dict[str, str]]:
    """The rollouts that sent traffic to this version (as canary or as stable), newest first."""
    from conveyor.rollout.status import StatusStore, list_services

    found: list[dict[str, Any]] = []
    for service in list_services():
        status = StatusStore(service).find()
        if status is None:
            continue
        if version.ref in (status.ref, status.canary.version, status.stable.version, status.previous_ref):
            role = "canary" if version.ref in (status.ref, status.canary.version) else "stable"
            found.append({"service": service, "role": role, "phase": status.phase, "at": status.updated_at})
    return sorted(found, key=lambda row: -float(row["at"]))
