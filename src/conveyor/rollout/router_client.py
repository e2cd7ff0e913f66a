"""The controller's side of the router's admin API (``/_conveyor/``), with the router's admin token.

The token is the one given, else ``CONVEYOR_ROUTER_TOKEN``, else the one a local router stored for
its address (``rollout/router_token.py``). Messages name the router without credentials.
"""

from __future__ import annotations

from typing import Any

import httpx

from conveyor.errors import Unauthorized
from conveyor.redaction import without_credentials
from conveyor.rollout.analysis.metric import MeasurementError
from conveyor.rollout.router_token import TOKEN_ENV, token_for
from conveyor.router.routing import RouteTable
from conveyor.tls import client_verify, transport_hint


class RouterClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.shown = without_credentials(self.url)
        token = token_for(self.url, token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers, verify=client_verify())

    def _unreachable(self, exc: httpx.HTTPError) -> MeasurementError:
        detail = str(exc) or type(exc).__name__
        return MeasurementError(f"the router at {self.shown} is unreachable: {detail}{transport_hint(exc)}")

    def _get(self, path: str) -> dict[str, Any]:
        try:
            response = self.http.get(path)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code in (401, 403):
            raise MeasurementError(f"the router at {self.shown} refused {path}: {_refusal(response)}")
        if response.status_code != 200:
            raise MeasurementError(f"the router at {self.shown} answered {path} with HTTP {response.status_code}")
        return response.json()

    def routes(self) -> RouteTable:
        data = self._get("/_conveyor/routes")
        for backend in data.get("backends", []):
            backend.pop("healthy", None)
            backend.pop("last_error", None)
        data.pop("instance", None)
        return RouteTable.model_validate(data)

    def unhealthy_backends(self) -> set[str]:
        """Names of the backends the router has ejected (their health checks fail)."""
        return {b["name"] for b in self.describe().get("backends", []) if b.get("healthy") is False}

    def describe(self) -> dict[str, Any]:
        return self._get("/_conveyor/routes")

    def stats(self) -> dict[str, Any]:
        return self._get("/_conveyor/stats")

    def set_routes(self, table: RouteTable) -> None:
        try:
            response = self.http.put("/_conveyor/routes", content=table.model_dump_json())
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code in (401, 403):
            raise Unauthorized(f"the router at {self.shown} refused the new routes: {_refusal(response)}")
        if response.status_code != 200:
            raise MeasurementError(f"the router refused the new routes: HTTP {response.status_code} {response.text}")

    def close(self) -> None:
        self.http.close()


def _refusal(response: httpx.Response) -> str:
    """Why the router refused, and where the tools look for its token."""
    return (
        f"HTTP {response.status_code}: its admin token is missing or wrong (give it in {TOKEN_ENV}; a router "
        "started on this machine without one stores its token for the local tools)"
    )
