"""The model registry's interface: every operation, documented once.

The embedded registry (:class:`~conveyor.registry.local.LocalRegistry`, SQL + blob store) and
the HTTP client (:class:`~conveyor.registry.client.RemoteRegistry`, a registry server) both
implement it, so the CLI, pipeline steps, the rollout controller and users' own training
scripts are written once against ``Registry`` (compare MLflow's ``AbstractStore``).  Errors are
Conveyor's named errors: ``NotFound``, ``InvalidInput``, ``Conflict`` (a protected alias, a
version still aliased), ``Unauthorized``, ``Unreachable`` (the server went away; what was not
confirmed did not happen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from conveyor.registry.base import Progress
from conveyor.registry.records import Alias, Lineage, ModelVersion, NewVersion, RegisteredModel
from conveyor.registry.refs import ModelRef


@runtime_checkable
class Registry(Protocol):
    def register(
        self,
        path: Path,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        aliases: Iterable[str] = (),
        lineage: Lineage | None = None,
        model_description: str | None = None,
        progress: Progress | None = None,
        skip_unchanged: bool = False,
        check: Callable[[list[tuple[str, Path]]], None] | None = None,
        extra_files: Iterable[tuple[str, Path]] = (),
    ) -> ModelVersion:
        """Register the files of ``path`` (a folder or one file) as the next version of ``name``.

        Each file is hashed and stored once (content-addressed); the version appears in one
        step only after every file is stored, so a crash leaves no half version.  ``aliases``
        are pointed at the new version; ``lineage`` records where it came from (source,
        git commit, run id, metrics, approvals).  With ``skip_unchanged``, files identical to
        the latest version register nothing and that version is returned (``unchanged``).
        ``check`` sees the (path in version, local path) pairs before anything is stored and
        raises to refuse them (``conveyor.serving.intake.check_servable``).
        """
        ...

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``name:N``, ``name@alias`` or ``name`` (the latest ready version) points at."""
        ...

    def download(self, ref: str | ModelRef, dest: Path, progress: Progress | None = None) -> ModelVersion:
        """Write the version's files under ``dest``, each verified against its sha256 (all or nothing)."""
        ...

    def cached(
        self, ref: str | ModelRef, progress: Progress | None = None, on_notice: Callable[[str], None] | None = None
    ) -> tuple[ModelVersion, Path]:
        """A verified local copy: downloaded once per digest, re-hashed on every use (``on_notice`` hears repairs)."""
        ...

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model with its aliases and version count."""
        ...

    def get_model(self, name: str) -> RegisteredModel:
        """One model (NotFound when it does not exist)."""
        ...

    def list_versions(self, name: str, include_archived: bool = False) -> list[ModelVersion]:
        """The versions of ``name``, oldest first."""
        ...

    def set_alias(self, name: str, alias: str, version: int, force: bool = False, protect: bool | None = None) -> Alias:
        """Point ``name@alias`` at ``version``; a protected alias moves only with ``force`` (else Conflict)."""
        ...

    def delete_alias(self, name: str, alias: str, force: bool = False) -> int:
        """Remove ``name@alias``; the version it pointed at."""
        ...

    def set_tags(self, name: str, version: int | None, set_tags: dict[str, str], unset: list[str]) -> dict[str, str]:
        """Change the tags of a model (``version`` None) or of one version; the tags after the change."""
        ...

    def archive_version(self, name: str, version: int) -> ModelVersion:
        """Hide a version from ``name`` resolution (refused while an alias points at it)."""
        ...

    def delete_version(self, name: str, version: int) -> ModelVersion:
        """Delete a version's record (its blobs stay until nothing references them)."""
        ...

    # the primitives RegistryBase builds register/download on ------------------------------

    def open_blob(self, digest: str) -> Iterable[bytes]:
        """The bytes of the blob ``sha256:digest``, in chunks."""
        ...

    def blob_exists(self, digest: str) -> bool: ...

    def store_blob(self, digest: str, local: Path, size: int, progress: Progress) -> None:
        """Upload one file as the blob ``digest`` (verified by the store)."""
        ...

    def create_version(self, name: str, new: NewVersion) -> ModelVersion:
        """Make a version from blobs already stored."""
        ...
