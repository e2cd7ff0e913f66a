"""A registry reference made into a local model folder the server can load (the cache, re-verified)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import InvalidInput, ModelLoadError
from conveyor.registry.base import Progress
from conveyor.registry.config import open_registry
from conveyor.registry.records import ModelVersion
from conveyor.serving.spec import ResolvedModel, locate_model
from conveyor.supply_chain.keys import TrustedKey


@dataclass(frozen=True)
class ServedVersion:
    version: ModelVersion
    model: Path  # a folder with model.yaml, or an .onnx file
    tokenizer: Path | None
    signed_by: str | None = None  # the trusted key whose signature was checked, when one was asked for


def fetch_for_serving(
    ref: str,
    progress: Progress | None = None,
    on_notice: Callable[[str], None] | None = None,
    trusted: list[TrustedKey] | None = None,
    offered: list[TrustedKey] | None = None,
) -> ServedVersion:
    """The version ``ref`` points at, from the local cache: downloaded once, re-verified by digest each time.

    With ``trusted`` keys (or under the registry's ``require-signed`` policy), a version none of
    them signed (OpenSSF model signing over exactly these files) is refused before anything loads."""
    from conveyor.supply_chain.model_signature import trusted_for, verify_version

    registry = open_registry()
    version, folder = registry.cached(ref, progress, on_notice)
    trusted = trusted_for(registry, version.name, trusted, offered)
    signed_by = verify_version(registry, version, folder, trusted) if trusted is not None else None
    try:
        model, tokenizer = locate_model(folder)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{version.ref}: {exc}") from None
    return ServedVersion(version, model, tokenizer, signed_by)


def is_registry_ref(model: str) -> bool:
    """Whether ``model`` names a registered version (``name:N``, ``name@alias``) rather than a folder."""
    from conveyor.registry.refs import looks_like_ref

    return looks_like_ref(model) and not Path(model).exists()


def resolve_served(model: str, progress: Progress | None = None) -> ResolvedModel:
    """A model folder, or a registry reference (``name:N``, ``name@alias``) fetched as for serving,
    resolved to the spec and files the server would load (the version's name and number kept)."""
    from conveyor.serving.spec import resolve_model

    if not is_registry_ref(model):
        if not Path(model).exists():
            raise InvalidInput(f"{model}: no such model folder, and not a registry reference (name:N, name@alias)")
        return resolve_model(model)
    served = fetch_for_serving(model, progress)
    return resolve_model(
        str(served.model),
        str(served.tokenizer) if served.tokenizer else None,
        served.version.name,
        str(served.version.version),
    )
