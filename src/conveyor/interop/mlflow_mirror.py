"""MLflow both ways: what Conveyor decides about an imported version is written back to MLflow's registry.

A version imported from MLflow carries ``mlflow.uri`` (``mlflow://HOST/NAME/VERSION``) in its
properties.  This module is a follower of the registry's events (``registry/events.py``): it runs
on the event's delivery thread, off the request path, retried with backoff when MLflow does not
answer, and writes to the MLflow version it came from:

- ``model_version.created``: ``conveyor.version`` = the Conveyor version it became (``cancer:2``);
- ``version.tagged``: each tag Conveyor set, under ``conveyor.`` (``conveyor.challenge=passed``,
  ``conveyor.verify=passed``, ``conveyor.image=...``);
- ``alias.moved``: ``conveyor.alias.ALIAS`` = the Conveyor version (a promotion: ``production``),
  and, where the import asked for it (``--mlflow-alias production=champion``, kept as the property
  ``mlflow.alias.production``), MLflow's alias ``champion`` moved to the same MLflow version.

It speaks MLflow's REST API with httpx (no MLflow client in the registry server) and authenticates as
MLflow's own clients do: ``MLFLOW_TRACKING_TOKEN`` (a bearer token), else ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD``; ``MLFLOW_TRACKING_SERVER_CERT_PATH`` or ``MLFLOW_TRACKING_INSECURE_TLS``
for TLS.  A refusal (a wrong credential, a version deleted in MLflow) is logged once, not retried.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from conveyor.registry.events import DeliveryFailed
from conveyor.registry.records import Event, ModelVersion

if TYPE_CHECKING:  # every registry opened loads this module; httpx only where a version goes back to MLflow
    import httpx

ALIAS_PROPERTY = "mlflow.alias."  # + Conveyor's alias: the MLflow alias moved with it
TAG_PREFIX = "conveyor."


def mlflow_auth() -> tuple[dict[str, str], httpx.BasicAuth | None, Any]:
    """Headers, basic auth and TLS verification as MLflow's clients read them from the environment."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    import httpx

    auth = httpx.BasicAuth(user, password or "") if user and not token else None
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true")
    verify: Any = False if insecure else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    return headers, auth, verify


def what_to_write(event: Event, version: ModelVersion) -> tuple[dict[str, str], str | None]:
    """The MLflow version tags EVENT sets, and the MLflow alias it moves (or None)."""
    if event.type == "model_version.created":
        return {f"{TAG_PREFIX}version": version.ref}, None
    if event.type == "version.tagged":
        return {f"{TAG_PREFIX}{key}": value for key, value in (event.tags or {}).items()}, None
    if event.type == "alias.moved" and event.alias is not None:
        return {f"{TAG_PREFIX}alias.{event.alias}": version.ref}, version.properties.get(ALIAS_PROPERTY + event.alias)
    return {}, None


def follow_mlflow(event: Event, version: ModelVersion | None) -> None:
    """Write EVENT back to the MLflow version VERSION was imported from (nothing for other versions)."""
    if version is None or "mlflow.uri" not in version.properties:
        return
    from conveyor.interop.mlflow_ref import parse_mlflow_ref

    ref = parse_mlflow_ref(version.properties["mlflow.uri"])
    tags, alias = what_to_write(event, version)
    if not tags and alias is None:
        return
    import httpx

    headers, auth, verify = mlflow_auth()
    api = f"{ref.tracking_uri}/api/2.0/mlflow"
    with httpx.Client(headers=headers, auth=auth, verify=verify, timeout=10) as client:
        for key, value in tags.items():
            body = {"name": ref.name, "version": ref.version, "key": key, "value": value}
            _answered(client.post(f"{api}/model-versions/set-tag", json=body), ref.uri, f"tag {key}")
        if alias is not None:
            body = {"name": ref.name, "alias": alias, "version": ref.version}
            _answered(client.post(f"{api}/registered-models/alias", json=body), ref.uri, f"alias @{alias}")


def _answered(response: httpx.Response, uri: str, what: str) -> None:
    if response.status_code < 300:
        return
    if response.status_code in (401, 403):
        reason = "a wrong or missing credential (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD)"
        raise DeliveryFailed(f"{uri}: {what}: MLflow answered HTTP {response.status_code}: {reason}", final=True)
    final = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    raise DeliveryFailed(f"{uri}: {what}: MLflow answered HTTP {response.status_code} {response.text[:200]}", final)
