"""The ``mlflow`` trigger: ``conveyor pipeline watch`` follows a model in MLflow's registry, imports
each new version (or each version its alias moves to) and runs the pipeline on it.

Checked every trigger's ``every``, and at once when MLflow's own webhook announces a version or an
alias of the model: the watch registers one (``register_webhooks``) on each tracking server whose
registry has them (MLflow 3), HMAC-signed with the watch's secret, and deletes it when it stops.  A
server without webhooks, or one that refuses the watch's URL (MLflow only calls ``https`` and public
addresses unless ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES`` and ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`` say
otherwise), is polled: one small request (``search_model_versions``, or the alias) per ``every``.

The version seen last is remembered per trigger in ``.conveyor/mlflow-triggers.json``, so a restarted
watch neither imports a version twice nor misses those that landed while it was down: every version
newer than the one remembered is imported, oldest first, each its own event.  The first check only
notes where the model stands: versions older than the watch are imported by hand (``conveyor models
import``).  A version the conversion gate refuses is reported and skipped; an unreachable server is
retried at the next check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.errors import ClientError, Forbidden, Unauthorized
from conveyor.pipeline.spec import MlflowTrigger

STATE_FILE = Path(".conveyor") / "mlflow-triggers.json"
MLFLOW_EVENTS_PATH = "/mlflow-events"
MLFLOW_EVENTS = ("model_version.created", "model_version_alias.created")
MAX_SKEW = 300  # seconds: an older signed delivery is refused (a replay)


def trigger_ref(trigger: MlflowTrigger) -> Any:
    """The model (its alias, or no version: the newest) TRIGGER follows."""
    from conveyor.interop.mlflow_ref import MlflowRef, tracking_server

    server = tracking_server(trigger.tracking_uri, f"the mlflow trigger of {trigger.model}")
    return MlflowRef(server, trigger.model, alias=trigger.alias)


def _state(project: Path) -> dict[str, str]:
    path = project / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _remember(project: Path, key: str, version: str) -> None:
    state = _state(project)
    state[key] = version
    (project / STATE_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(project / STATE_FILE, json.dumps(state, indent=1))


def check_mlflow(trigger: MlflowTrigger, project: Path, report: Callable[[str], None]) -> list[dict[str, Any]]:
    """One event per version of TRIGGER's model not seen before, each imported into the registry, oldest first.

    A version the gate refuses is remembered (not tried again) and reported; it raises only when no
    other version was imported, so the versions after it still run their pipeline."""
    from conveyor.interop.mlflow_import import latest_version, versions_after

    ref = trigger_ref(trigger)
    number = latest_version(ref)
    seen = _state(project).get(trigger.key)
    if number is None or number == seen:
        return []
    if seen is None:
        _remember(project, trigger.key, number)
        report(f"{ref.uri if trigger.alias else ref.tracking_uri + ' ' + ref.name}: at version {number}")
        return []
    if trigger.alias is None and int(number) < int(seen):
        return []  # the newest was deleted in MLflow: wait for a newer one
    numbers = [number] if trigger.alias is not None else versions_after(ref, int(seen))
    events: list[dict[str, Any]] = []
    refused: list[ClientError] = []
    for each in numbers:
        try:
            events.append(_imported(trigger, ref.at_version(each), report))
        except (Unauthorized, Forbidden):
            raise  # the credential, not the version: tried again at the next check
        except ClientError as exc:
            refused.append(exc)  # refused for good (the gate, a flavor): not again
            report(f"warning: {ref.at_version(each).uri} not imported: {exc}")
        _remember(project, trigger.key, each)
    if refused and not events:
        raise refused[-1]
    return events


def _imported(trigger: MlflowTrigger, ref: Any, report: Callable[[str], None]) -> dict[str, Any]:
    from conveyor.interop.mlflow_import import import_version
    from conveyor.registry.config import open_registry

    version = import_version(
        open_registry(),
        ref,
        name=trigger.register_as,
        report=report,
        aliases=trigger.aliases,
        mlflow_aliases=trigger.mlflow_aliases,
        skip_unchanged=True,
    )
    return {"type": "mlflow", "trigger": trigger.key, "model": version.name, "version": version.version,
            "mlflow": ref.uri}  # fmt: skip


def mlflow_signed(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """The model a delivery of MLflow's webhook names, if it is signed with SECRET and recent; else None.

    MLflow signs ``DELIVERY_ID.TIMESTAMP.BODY`` with HMAC-SHA256 and sends ``X-MLflow-Signature: v1,BASE64``."""
    named = {key.lower(): value for key, value in headers.items()}
    delivery, stamp = named.get("x-mlflow-delivery-id", ""), named.get("x-mlflow-timestamp", "")
    signature = named.get("x-mlflow-signature", "")
    if not (delivery and stamp.isdigit() and signature.startswith("v1,")):
        return None
    signed = f"{delivery}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, signature[3:]) or abs(time.time() - int(stamp)) > MAX_SKEW:
        return None
    try:
        name = json.loads(body)["data"]["name"]
    except (ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def register_webhooks(
    triggers: list[MlflowTrigger], url: str, secret: str, warn: Callable[[str], None]
) -> list[tuple[str, str]]:
    """MLflow webhooks calling URL on each tracking server of TRIGGERS that takes them: (server, webhook id)."""
    from conveyor.interop.mlflow_import import mlflow_client
    from conveyor.interop.mlflow_ref import MlflowRef

    registered: list[tuple[str, str]] = []
    for server in dict.fromkeys(trigger_ref(t).tracking_uri for t in triggers):
        ref = MlflowRef(server, "(webhooks)", version="1")
        try:
            client = mlflow_client(ref)
            if not hasattr(client, "create_webhook"):
                raise ClientError("this MLflow client has no webhooks (MLflow 3 has)")
            hook = client.create_webhook(
                name=f"conveyor-watch-{secret[:8]}", url=url, events=list(MLFLOW_EVENTS), secret=secret,
                description="conveyor pipeline watch: removed when the watch stops",
            )  # fmt: skip
        except Exception as exc:  # MLflow 2 has no webhooks; MLflow 3 may refuse the URL (scheme, private address)
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            warn(f"MLflow at {server} takes no webhook from this watch ({reason}): polling it instead")
            continue
        registered.append((server, str(hook.webhook_id)))
    return registered


def unregister_webhooks(registered: list[tuple[str, str]], warn: Callable[[str], None]) -> None:
    from conveyor.interop.mlflow_import import explained, mlflow_client
    from conveyor.interop.mlflow_ref import MlflowRef

    for server, webhook_id in registered:
        ref = MlflowRef(server, "(webhooks)", version="1")
        try:
            mlflow_client(ref).delete_webhook(webhook_id)
        except Exception as exc:
            warn(f"MLflow at {server}: the watch's webhook {webhook_id} stays registered ({explained(exc, ref)})")
