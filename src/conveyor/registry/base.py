"""What every registry backend shares: registration, verified download and the local cache.

``RegistryBase`` implements the operations of :class:`~conveyor.registry.protocol.Registry`
that are the same everywhere (hashing and uploading a folder, making the version visible in
one step, downloading into a staging folder, the re-verified cache) over five primitives
each backend provides: ``resolve``, ``open_blob``, ``create_version``, ``blob_exists`` and
``store_blob``.  The embedded registry (``local.py``) and the HTTP client (``client.py``) both
build on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

from conveyor.digest import digest_of_pairs, sha256_file
from conveyor.errors import ClientError, InvalidInput, NotFound, Unreachable
from conveyor.home import conveyor_home
from conveyor.registry.blobs import copy_verified
from conveyor.registry.onnx_info import framework_of
from conveyor.registry.records import Alias, FileEntry, Lineage, ModelVersion, NewVersion
from conveyor.registry.refs import ModelRef, check_file_name, check_name
from conveyor.registry.storage_errors import NOTHING_REGISTERED, outcome, writing_file


class Progress(Protocol):
    """What long transfers report to (the CLI draws a progress bar)."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...


class Silent:
    """A Progress that reports nowhere."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


def version_digest(files: Iterable[FileEntry]) -> str:
    """One sha256 for a whole version: over the sorted (path, sha256) pairs."""
    return digest_of_pairs((f.path, f.sha256) for f in files)


def check_file_path(path: str) -> str:
    """File paths inside a version are relative, forward-slashed and never climb out."""
    pure = PurePosixPath(path)
    if (
        not path
        or pure.is_absolute()
        or "\\" in path
        or any(part in ("..", "") for part in path.split("/"))
        or any(ord(c) < 32 for c in path)
    ):
        raise InvalidInput(f"invalid file path {path!r} in version: must be relative, without '..'")
    return path


def collect_files(path: Path) -> list[tuple[str, Path]]:
    """(path inside the version, local path) for a file or every file under a folder."""
    path = Path(path)
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise NotFound(f"{path}: no such file or directory")
    found = []
    for local in sorted(path.rglob("*")):
        relative = local.relative_to(path)
        if any(part.startswith(".") for part in relative.parts) or not local.is_file():
            continue  # hidden files (.git, editor swap files) are not part of a model
        found.append((relative.as_posix(), local))
    if not found:
        raise InvalidInput(f"{path}: the folder holds no files to register")
    return found


def model_facts(files: list[tuple[str, Path]]) -> tuple[str | None, str | None, dict[str, str]]:
    """(framework, its version, extra properties): the ONNX file's, or the framework a converted
    model came from as its ``model.yaml`` records it (``source``), the ONNX facts kept as properties."""
    trained = _converted_from(files)
    for _, local in files:
        framework, version, extra = framework_of(local)
        if framework:
            if trained is not None:
                return trained[0], trained[1], extra
            return framework, version, extra
    return None, None, {}


def _converted_from(files: list[tuple[str, Path]]) -> tuple[str, str] | None:
    import yaml

    for relative, local in files:
        if relative != "model.yaml":
            continue
        try:
            source = (yaml.safe_load(local.read_text()) or {}).get("source")
        except (yaml.YAMLError, OSError, UnicodeDecodeError, AttributeError):
            return None
        if isinstance(source, dict) and isinstance(source.get("framework"), str):
            return source["framework"], str(source.get("framework_version", ""))
    return None


def git_commit(path: Path) -> str | None:
    """The commit of the git checkout holding ``path``, if any (read from .git, no git binary needed)."""
    for folder in [path.resolve(), *path.resolve().parents]:
        head = folder / ".git" / "HEAD"
        if head.is_file():
            content = head.read_text().strip()
            if content.startswith("ref: "):
                ref = folder / ".git" / content.removeprefix("ref: ")
                if ref.is_file():
                    return ref.read_text().strip()
                packed = folder / ".git" / "packed-refs"
                if packed.is_file():
                    for line in packed.read_text().splitlines():
                        if line.endswith(content.removeprefix("ref: ")):
                            return line.split()[0]
                return None
            return content
    return None


class RegistryBase(ABC):
    """What every backend shares: registration, download and the cache, over a few primitives.

    Subclasses provide ``resolve``, ``list_versions``, ``set_alias``, ``open_blob``,
    ``create_version``, ``blob_exists`` and ``store_blob``.
    """

    cache_dir: Path | None = None

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
        """Store every file of ``path`` as a blob, then make the version visible in one step.

        A crash before the last step leaves no version (at most unreferenced blobs).
        With ``skip_unchanged``, files identical to an existing version's (the newest such,
        archived ones aside) register nothing: that version is returned (and the aliases pointed
        at it), so a pipeline run again on unchanged code adds no duplicate even when a later
        version (an optimized variant, say) has been registered since.  ``check`` sees the
        (path in version, local path) pairs first and raises to refuse them
        (``conveyor.serving.intake.check_servable``: only what can be served).  ``extra_files``
        (path in version, local path) join the folder's: what Conveyor made beside the model, such
        as its reference profile (``monitoring/profile.json``).
        """
        check_name(name)
        progress = progress or Silent()
        files = collect_files(Path(path))
        extra = dict(extra_files)  # replace the folder's file of the same name
        files = sorted([f for f in files if f[0] not in extra] + list(extra.items()))
        for relative, _ in files:
            check_file_name(relative)
        if check is not None:  # before anything is hashed or stored: a refusal leaves no trace
            check(files)
        needed = sum(local.stat().st_size for _, local in files)
        ingest = getattr(self, "ingest_files", None)
        with outcome(NOTHING_REGISTERED, needed):  # a full disk, a lost database: said once, with the size
            if ingest is not None and not skip_unchanged:
                entries = ingest(files, name, progress)  # stored while hashed: one read of each file
            else:
                entries = self._hash_files(files, name, progress)
                if skip_unchanged and (same := self._version_with_digest(name, version_digest(entries))):
                    for alias in aliases:
                        self.set_alias(name, alias, same.version)
                    return self.resolve(f"{name}:{same.version}").model_copy(update={"unchanged": True})
                self._store_missing(entries, files, name, progress)
        framework, framework_version, facts = model_facts(files)
        lineage = lineage or Lineage()
        if lineage.source is None:
            lineage = lineage.model_copy(update={"source": str(Path(path).resolve())})
        if lineage.git_commit is None:
            lineage = lineage.model_copy(update={"git_commit": git_commit(Path(path))})
        new = NewVersion(
            description=description,
            files=entries,
            framework=framework,
            framework_version=framework_version,
            tags=tags or {},
            properties={**facts, **(properties or {})},
            lineage=lineage,
            aliases=list(aliases),
            model_description=model_description,
        )
        try:
            with outcome(NOTHING_REGISTERED, needed):
                return self.create_version(name, new)
        except Unreachable as exc:
            raise Unreachable(
                f"{exc}; the files were stored but the registry did not confirm the new version of {name}: "
                f"check with `conveyor models show {name}` and register again if it is not there"
            ) from None

    @staticmethod
    def _hash_files(files: list[tuple[str, Path]], name: str, progress: Progress) -> list[FileEntry]:
        progress.start(f"hashing {name}", sum(local.stat().st_size for _, local in files))
        entries = []
        for relative, local in files:
            digest, size = sha256_file(local, progress.advance)
            entries.append(FileEntry(path=relative, sha256=digest, size=size))
        return entries

    def _store_missing(
        self, entries: list[FileEntry], files: list[tuple[str, Path]], name: str, progress: Progress
    ) -> None:
        """Upload the blobs the store does not hold yet (a remote registry: each is sent once)."""
        missing: dict[str, tuple[Path, int]] = {}
        for entry, (_, local) in zip(entries, files, strict=True):
            if entry.sha256 not in missing and not self.blob_exists(entry.sha256):
                missing[entry.sha256] = (local, entry.size)
        progress.start(f"storing {name}", sum(size for _, size in missing.values()))
        try:
            for digest, (local, size) in missing.items():
                self.store_blob(digest, local, size, progress)
        except Unreachable as exc:
            raise Unreachable(
                f"{exc}; nothing was registered ({name} has no new version): "
                "run the same command again once the registry is back (stored files are not sent twice)"
            ) from None

    def download(self, ref: str | ModelRef, dest: Path, progress: Progress | None = None) -> ModelVersion:
        """Write a version's files under ``dest``, each verified against its sha256.

        Files land in a staging folder beside ``dest`` first: a failed or
        interrupted download leaves ``dest`` as it was.
        """
        return download_version(self.resolve(ref), self.open_blob, Path(dest), progress)

    def cached(
        self, ref: str | ModelRef, progress: Progress | None = None, on_notice: Callable[[str], None] | None = None
    ) -> tuple[ModelVersion, Path]:
        """A verified local copy of a version (downloaded once per digest, re-hashed on every use)."""
        version = self.resolve(ref)
        return version, cache_version(version, self.open_blob, self.cache_dir, progress, on_notice)

    def _version_with_digest(self, name: str, digest: str) -> ModelVersion | None:
        """The newest unarchived version of ``name`` whose files have ``digest``; None when none (or no model)."""
        return self.newest_version_where(name, lambda v: v.digest == digest)

    def newest_version_where(self, name: str, wanted: Callable[[ModelVersion], bool]) -> ModelVersion | None:
        """The newest unarchived version of ``name`` that is ``wanted``; None when none (or no such model)."""
        try:
            versions = self.list_versions(name)
        except ClientError as exc:
            if exc.status == 404:
                return None
            raise
        found = [v for v in versions if v.status != "archived" and wanted(v)]
        return max(found, key=lambda v: v.version, default=None)

    # primitives -------------------------------------------------------------------------------

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: int, force: bool = False, protect: bool | None = None) -> Alias:
        """Point ``name@alias`` at ``version`` (Conflict when protected and not ``force``)."""

    @abstractmethod
    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``ref`` names (``name:N``, ``name@alias``, ``name:latest``); NotFound otherwise."""

    @abstractmethod
    def list_versions(self, name: str, include_archived: bool = False) -> list[ModelVersion]:
        """The versions of model ``name`` (archived ones only with ``include_archived``); NotFound otherwise."""

    @abstractmethod
    def open_blob(self, digest: str) -> Iterable[bytes]:
        """The bytes of the blob with ``digest``, in chunks."""

    @abstractmethod
    def create_version(self, name: str, new: NewVersion) -> ModelVersion:
        """Record a new version of ``name`` whose blobs are already stored."""

    @abstractmethod
    def blob_exists(self, digest: str) -> bool:
        """Whether the blob with ``digest`` is stored (an upload is skipped then)."""

    @abstractmethod
    def store_blob(self, digest: str, local: Path, size: int, progress: Progress) -> None:
        """Store the file ``local`` as the blob ``digest`` (its bytes checked on the way)."""


def download_version(
    version: ModelVersion,
    open_blob: Callable[[str], Iterable[bytes]],
    dest: Path,
    progress: Progress | None = None,
    check: Callable[[Path], None] | None = None,
) -> ModelVersion:
    """Write the version's files, each verified, into ``dest`` through a staging folder.

    ``check`` sees the complete staging folder before anything moves into ``dest``; raising
    there (a signature that does not verify) leaves ``dest`` as it was."""
    progress = progress or Silent()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        progress.start(f"downloading {version.ref}", version.size)
        for entry in version.files:
            target = staging / check_file_path(entry.path)
            with writing_file(entry.path, dest, "nothing was downloaded"):
                copy_verified(open_blob(entry.sha256), target, entry.sha256, progress.advance)
        if check is not None:
            check(staging)
        dest.mkdir(parents=True, exist_ok=True)
        for entry in version.files:
            final = dest / entry.path
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / entry.path, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version


COMPLETE_MARKER = ".conveyor-complete"


def cache_version(
    version: ModelVersion,
    open_blob: Callable[[str], Iterable[bytes]],
    cache_dir: Path | None,
    progress: Progress | None = None,
    on_notice: Callable[[str], None] | None = None,
    before_reuse: Callable[[], None] | None = None,
) -> Path:
    """A verified local copy of a version under the cache, downloaded once per digest.

    A cached copy is re-hashed every time it is handed out: bytes changed on disk since the
    download (or files added beside them) are thrown away and downloaded again, and
    ``on_notice`` hears which files were wrong.  ``before_reuse`` runs only when an existing
    copy is about to be handed out (a download verifies the source's bytes by itself).
    """
    root = Path(cache_dir) if cache_dir else conveyor_home() / "cache"
    target = root / version.name / f"{version.version}-{version.digest[:16]}"
    marker = target / COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == version.digest:
        if before_reuse is not None:
            before_reuse()
        changed = cache_mismatches(version, target)
        if not changed:
            return target
        if on_notice is not None:
            on_notice(
                f"the cached copy of {version.ref} in {target} was changed on disk ({', '.join(changed)}): "
                "downloading it again"
            )
    if target.exists():
        shutil.rmtree(target)
    download_version(version, open_blob, target, progress)
    marker.write_text(version.digest)
    return target


def cache_mismatches(version: ModelVersion, folder: Path) -> list[str]:
    """The files of ``folder`` that differ from the version: changed, missing or added."""
    expected = {entry.path: entry.sha256 for entry in version.files}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {COMPLETE_MARKER}
    wrong = sorted(present - expected.keys()) + sorted(expected.keys() - present)
    for path in sorted(expected.keys() & present):
        if sha256_file(folder / path)[0] != expected[path]:
            wrong.append(path)
    return wrong
