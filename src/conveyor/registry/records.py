"""What the registry stores, as returned by every backend (local, SQL, HTTP)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class FileEntry(BaseModel):
    """One file of a version: its path inside the version, sha256 and size."""

    path: str
    sha256: str
    size: int


class Lineage(BaseModel):
    """Where a version came from."""

    source: str | None = None
    git_commit: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    optimized_from: str | None = Field(default=None, description="the version this one is a faster variant of")
    derived_from: str | None = Field(
        default=None, description="the version whose files this one reuses by digest, but those it replaced"
    )
    approvals: list[dict[str, str | bool]] = Field(
        default_factory=list, description="Decisions people made in the run that registered it: step, by, reason, at"
    )


class ModelVersion(BaseModel):
    name: str
    version: int
    description: str = ""
    status: Literal["ready", "archived"] = "ready"
    digest: str
    size: int
    files: list[FileEntry]
    framework: str | None = None
    framework_version: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    aliases: list[str] = Field(default_factory=list)
    created_at: datetime
    unchanged: bool = Field(default=False, description="register --skip-unchanged found identical files")

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class Alias(BaseModel):
    name: str
    version: int
    protected: bool = False
    updated_at: datetime


class RegisteredModel(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    latest_version: int | None = None
    version_count: int = 0
    aliases: list[Alias] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class NewVersion(BaseModel):
    """What a client sends to create a version once its blobs are stored."""

    description: str = ""
    files: list[FileEntry] = Field(min_length=1)
    framework: str | None = None
    framework_version: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    aliases: list[str] = Field(default_factory=list)
    model_description: str | None = None


class Event(BaseModel):
    """Sent to webhooks and local hooks."""

    id: str
    type: Literal["model_version.created", "alias.moved", "alias.deleted", "version.tagged"]
    model: str
    version: int | None = None
    alias: str | None = None
    digest: str | None = None
    tags: dict[str, str] | None = Field(default=None, description="version.tagged: the tags set")
    at: datetime
