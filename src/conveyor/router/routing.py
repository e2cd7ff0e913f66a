"""The router's routing table: which backends exist, their traffic weights, pinning, stickiness, mirroring.

The table is immutable; a change builds a new one and swaps one reference, so a
request that already picked its backend finishes there undisturbed.
"""

from __future__ import annotations

import random
import zlib
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PIN_HEADER = "x-conveyor-version"  # pin a request to a backend by name ("canary") or version ("sentiment:2")
SERVED_BY_HEADER = "x-conveyor-backend"


class BackendSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    url: str
    version: str = ""
    weight: Annotated[float, Field(ge=0, le=100)] = 0.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("http://", "https://")) or "/" in value.split("://", 1)[1]:
            raise ValueError("must be http(s)://host:port without a path")
        return value


class RouteTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backends: list[BackendSpec] = []
    mirror_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    mirror_to: str | None = None
    # a mirrored regression answer agrees when within either tolerance of stable's (math.isclose)
    value_tolerance: Annotated[float, Field(ge=0)] = 0.05
    value_tolerance_abs: Annotated[float, Field(ge=0)] = 0.0
    sticky_header: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RouteTable:
        names = [b.name for b in self.backends]
        if len(set(names)) != len(names):
            raise ValueError(f"backend names must be unique: {names}")
        total = sum(b.weight for b in self.backends)
        if self.backends and abs(total - 100.0) > 1e-6:
            raise ValueError(f"backend weights must add up to 100 (they add up to {total:g})")
        if self.mirror_to is not None and self.mirror_to not in names:
            raise ValueError(f"mirror_to names no backend: {self.mirror_to!r} (backends: {names})")
        if self.mirror_percent > 0 and self.mirror_to is None:
            raise ValueError("mirror_percent needs mirror_to, the backend that receives the copies")
        if self.sticky_header is not None:
            self.sticky_header = self.sticky_header.lower()
        return self

    @property
    def splits(self) -> bool:
        """More than one backend takes live traffic (a canary is being compared with stable)."""
        return sum(1 for b in self.backends if b.weight > 0) > 1

    def backend(self, name: str) -> BackendSpec | None:
        return next((b for b in self.backends if b.name == name), None)

    def without(self, names: set[str]) -> RouteTable:
        """The table with those backends gone: without its stable nothing is left to route to, and a
        stable left alone takes all the traffic, mirroring off."""
        kept = [b for b in self.backends if b.name not in names]
        if not kept or self.backend("stable") is None or "stable" in names:
            return RouteTable(sticky_header=self.sticky_header)
        if len(kept) == 1:
            return RouteTable(backends=[kept[0].model_copy(update={"weight": 100.0})], sticky_header=self.sticky_header)
        mirror = self.mirror_to if self.mirror_to not in names else None
        return self.model_copy(
            update={"backends": kept, "mirror_to": mirror, "mirror_percent": self.mirror_percent if mirror else 0.0}
        )


def pick(
    table: RouteTable,
    healthy: set[str],
    pin: str | None = None,
    sticky_key: str | None = None,
    rng: random.Random | None = None,
) -> list[BackendSpec]:
    """The backends to try for one request, first choice first; fallbacks are the other healthy backends.

    Ejected (unhealthy) backends get no new traffic: their weight is spread over
    the others. With every weighted backend ejected, any healthy backend serves.
    """
    if not table.backends:
        return []
    if pin:
        pinned = [b for b in table.backends if pin in (b.name, b.version)]
        if pinned:
            return pinned[:1]
    weighted = [b for b in table.backends if b.weight > 0 and b.name in healthy]
    if not weighted:
        weighted = [b for b in table.backends if b.name in healthy] or [b for b in table.backends if b.weight > 0]
        weights = [1.0] * len(weighted)
    else:
        weights = [b.weight for b in weighted]
    total = sum(weights)
    if sticky_key is not None:
        point = (zlib.crc32(sticky_key.encode()) % 10_000) / 10_000 * total
    else:
        point = (rng or random).random() * total
    chosen = weighted[-1]
    for backend, weight in zip(weighted, weights, strict=True):
        if point < weight:
            chosen = backend
            break
        point -= weight
    rest = [b for b in table.backends if b is not chosen and b.name in healthy]
    rest.sort(key=lambda b: -b.weight)
    return [chosen, *rest]
