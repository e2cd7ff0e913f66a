"""A registry server, used through the same methods as the embedded registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from conveyor.errors import ConveyorError, StorageFull, StorageUnavailable, Unreachable, error_for_status
from conveyor.registry.base import Progress, RegistryBase
from conveyor.registry.blobs import CHUNK, file_chunks
from conveyor.registry.records import Alias, ModelVersion, NewVersion, RegisteredModel
from conveyor.registry.refs import ModelRef, check_name, parse_ref
from conveyor.tls import client_verify, transport_hint


class RemoteError(ConveyorError):
    """The registry server refused a request; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RemoteRegistry(RegistryBase):
    """Talks to ``conveyor registry serve`` with a bearer token."""

    def __init__(self, url: str, token: str | None, cache_dir: Path | None = None, timeout: float = 60) -> None:
        self.location = url.rstrip("/")
        self.cache_dir = cache_dir
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.location + "/api/v1", headers=headers, timeout=timeout, verify=client_verify()
        )

    # ---- plumbing ---------------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        what = str(exc) or type(exc).__name__
        return Unreachable(f"cannot reach the registry at {self.location}: {what}{transport_hint(exc)}")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            self._raise(response)
        return response

    def _raise(self, response: httpx.Response) -> None:
        try:
            message = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200] or response.reason_phrase
        if response.status_code == 401:
            hint = "" if "Authorization" in self._http.headers else " (CONVEYOR_TOKEN is not set)"
            message = f"{message}{hint}"
        if response.status_code < 500:
            raise error_for_status(response.status_code, f"registry: {message}")
        storage = {507: StorageFull, 503: StorageUnavailable}.get(response.status_code)
        if storage is not None:  # the server's storage: its line already says what did not happen
            raise storage(f"the registry at {self.location}: {message}", outcome="")
        raise RemoteError(response.status_code, f"registry error {response.status_code}: {message}")

    # ---- registration -----------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        try:
            response = self._http.head(f"/blobs/{digest}")
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            self._raise(response)
        return True

    def store_blob(self, digest: str, local: Path, size: int, progress: Progress) -> None:
        self._request(
            "PUT",
            f"/blobs/{digest}",
            content=file_chunks(local, progress.advance),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=None,
        )

    def create_version(self, name: str, new: NewVersion) -> ModelVersion:
        response = self._request(
            "POST",
            f"/models/{check_name(name)}/versions",
            content=new.model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        return ModelVersion.model_validate(response.json())

    # ---- reading ----------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        return [RegisteredModel.model_validate(m) for m in self._request("GET", "/models").json()]

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.model_validate(self._request("GET", f"/models/{check_name(name)}").json())

    def list_versions(self, name: str, include_archived: bool = False) -> list[ModelVersion]:
        params = {"archived": "1"} if include_archived else {}
        response = self._request("GET", f"/models/{check_name(name)}/versions", params=params)
        return [ModelVersion.model_validate(v) for v in response.json()]

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        text = str(parse_ref(ref) if isinstance(ref, str) else ref)
        return ModelVersion.model_validate(self._request("GET", "/resolve", params={"ref": text}).json())

    def open_blob(self, digest: str) -> Iterator[bytes]:
        try:
            with self._http.stream("GET", f"/blobs/{digest}", timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                yield from response.iter_bytes(CHUNK)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    # ---- changing ---------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, force: bool = False, protect: bool | None = None) -> Alias:
        body = {"version": version, "force": force, "protect": protect}
        return Alias.model_validate(
            self._request("PUT", f"/models/{check_name(name)}/aliases/{alias}", json=body).json()
        )

    def delete_alias(self, name: str, alias: str, force: bool = False) -> int:
        params = {"force": "1"} if force else {}
        response = self._request("DELETE", f"/models/{check_name(name)}/aliases/{alias}", params=params)
        return int(response.json()["version"])

    def set_tags(self, name: str, version: int | None, set_tags: dict[str, str], unset: list[str]) -> dict[str, str]:
        path = f"/models/{check_name(name)}" + (f"/versions/{version}" if version is not None else "") + "/tags"
        return self._request("PATCH", path, json={"set": set_tags, "unset": unset}).json()["tags"]

    def archive_version(self, name: str, version: int) -> ModelVersion:
        response = self._request("POST", f"/models/{check_name(name)}/versions/{version}/archive")
        return ModelVersion.model_validate(response.json())

    def delete_version(self, name: str, version: int) -> ModelVersion:
        response = self._request("DELETE", f"/models/{check_name(name)}/versions/{version}")
        return ModelVersion.model_validate(response.json())
