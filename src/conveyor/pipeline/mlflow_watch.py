"""The ``mlflow`` trigger: ``conveyor pipeline watch`` follows a model in MLflow's registry, imports
each new version (or each version its alias moves to) and runs the pipeline on it.

Polling, every trigger's ``every``: MLflow's webhooks need a server that can reach the watcher and
are not in every MLflow release, while a poll of ``search_model_versions`` (or of the alias) costs one
small request.  The version seen last is remembered per trigger in ``.conveyor/mlflow-triggers.json``,
so a restarted watch neither imports a version twice nor misses one that landed while it was down.
The first check only notes where the model stands: versions older than the watch are imported by
hand (``conveyor models import``).  A version the conversion gate refuses is reported and skipped; an
unreachable server is retried at the next poll.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.errors import ClientError
from conveyor.pipeline.spec import MlflowTrigger

STATE_FILE = Path(".conveyor") / "mlflow-triggers.json"


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


def check_mlflow(trigger: MlflowTrigger, project: Path, report: Callable[[str], None]) -> dict[str, Any] | None:
    """The event for a version of TRIGGER's model not seen before, imported into the registry; or None."""
    from conveyor.interop.mlflow_import import import_version, latest_version
    from conveyor.registry.config import open_registry

    ref = trigger_ref(trigger)
    number = latest_version(ref)
    seen = _state(project).get(trigger.key)
    if number is None or number == seen:
        return None
    if seen is None:
        _remember(project, trigger.key, number)
        report(f"{ref.uri if trigger.alias else ref.tracking_uri + ' ' + ref.name}: at version {number}")
        return None
    if trigger.alias is None and int(number) < int(seen):
        return None  # the newest was deleted in MLflow: wait for a newer one
    try:
        version = import_version(
            open_registry(),
            ref.at_version(number),
            name=trigger.register_as,
            report=report,
            aliases=trigger.aliases,
            skip_unchanged=True,
        )
    except ClientError:
        _remember(project, trigger.key, number)  # refused for good (the gate, a flavor): not again
        raise
    _remember(project, trigger.key, number)
    return {
        "type": "mlflow",
        "trigger": trigger.key,
        "model": version.name,
        "version": version.version,
        "mlflow": ref.at_version(number).uri,
    }
