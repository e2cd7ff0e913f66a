"""Which registry to use, from arguments or the environment.

* ``CONVEYOR_HOME`` (default ``~/.conveyor``): the embedded registry lives here
  (``registry.db`` + ``blobs/``), with the download cache and local hooks.
* ``CONVEYOR_REGISTRY``: unset for the embedded default; an ``http(s)://`` URL
  for a registry server (with ``CONVEYOR_TOKEN``); a ``sqlite:///`` or
  ``postgresql://`` URL for shared metadata, with ``CONVEYOR_BLOB_STORE``
  (a folder or ``s3://bucket/prefix``) for the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.home import conveyor_home

if TYPE_CHECKING:  # the stores import SQLAlchemy, boto3 or httpx: only when a command opens one
    from conveyor.registry.blobs import LocalBlobStore
    from conveyor.registry.local import LocalRegistry
    from conveyor.registry.protocol import Registry
    from conveyor.registry.s3_blobs import S3BlobStore


def open_blob_store(location: str) -> LocalBlobStore | S3BlobStore:
    """The blob store at ``location``: ``s3://bucket/prefix``, else a folder."""
    if location.startswith("s3://"):
        from conveyor.registry.s3_blobs import S3BlobStore

        return S3BlobStore(location)
    from conveyor.registry.blobs import LocalBlobStore

    return LocalBlobStore(Path(location).expanduser())


def open_local(database_url: str | None = None, blob_store: str | None = None) -> LocalRegistry:
    from conveyor.interop.mlflow_mirror import follow_mlflow
    from conveyor.registry.local import LocalRegistry
    from conveyor.registry.sql import SqlStore

    home = conveyor_home()
    database_url = database_url or f"sqlite:///{home / 'registry.db'}"
    blob_store = blob_store or os.environ.get("CONVEYOR_BLOB_STORE") or str(home / "blobs")
    return LocalRegistry(
        SqlStore(database_url),
        open_blob_store(blob_store),
        hooks_dir=home / "hooks",
        cache_dir=home / "cache",
        followers=[("mlflow write-back", follow_mlflow)],  # versions imported from MLflow: interop/mlflow_mirror.py
    )


def open_registry(location: str | None = None, token: str | None = None) -> Registry:
    """The registry at ``location`` (default ``CONVEYOR_REGISTRY``, else the embedded one under ``CONVEYOR_HOME``).

    ``http(s)://`` is a registry server (``token`` default ``CONVEYOR_TOKEN``); a database URL or
    a folder is an embedded registry there.  Local and remote implement the same ``Registry``.
    """
    location = location or os.environ.get("CONVEYOR_REGISTRY") or None
    if location and location.startswith(("http://", "https://")):
        from conveyor.registry.client import RemoteRegistry

        return RemoteRegistry(location, token or os.environ.get("CONVEYOR_TOKEN"))
    if location and "://" in location:
        return open_local(database_url=location)
    if location:
        root = Path(location).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        return open_local(f"sqlite:///{root / 'registry.db'}", str(root / "blobs"))
    return open_local()
