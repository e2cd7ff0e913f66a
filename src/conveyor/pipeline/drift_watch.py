"""The ``drift`` trigger: ``conveyor pipeline watch`` checks the served version's traffic and runs the
pipeline (retraining, say) when the latest window drifted or its live quality fell.

Each check resolves ``model@alias`` in the registry (the version serving now), reads its payload
log and judges it as ``conveyor monitor`` does.  A finding becomes one event, once: the drift
report is kept as ``.conveyor/drift-reports/<model>-<version>-<time>.json`` in the project and the
window it judged is remembered (``.conveyor/drift-triggers.json``), so the same drifted window
never starts a second run.  The run gets ``model`` (the live ``name:version``), ``drift_report``
(the report's content digest, ``sha256:...``) and ``drift_report_file`` (its absolute path) as
parameters where the pipeline declares them: pass the digest to the ``register`` step's
properties and the new version's lineage names what started it by its content, beside the run id
(a path can be overwritten or mean another file in another folder; a digest cannot).  The file's
name ends with the digest's first 12 digits, so a digest finds its report.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.monitoring.thresholds import Thresholds
from conveyor.pipeline.spec import DriftTrigger

STATE_FILE = Path(".conveyor") / "drift-triggers.json"
REPORTS = Path(".conveyor") / "drift-reports"


def check_drift(trigger: DriftTrigger, project: Path) -> dict[str, Any] | None:
    """The event for a new finding on ``trigger``'s served version, or None."""
    from conveyor.monitoring.run import monitor_log
    from conveyor.monitoring.windows import span_of
    from conveyor.serving.fetch import resolve_served

    resolved = resolve_served(f"{trigger.model}@{trigger.alias}")
    ref = f"{resolved.spec.name}:{resolved.spec.version}"
    limits = Thresholds(**trigger.limits())
    span = span_of(trigger.since, None, trigger.window_time)
    result = monitor_log(resolved, trigger.logs, None, trigger.window, limits, span=span)
    latest = result.latest
    if latest is None or not result.latest_drifted:
        return None
    key = f"{ref} {latest.start} {latest.end}"
    state_path = project / STATE_FILE
    seen = json.loads(state_path.read_text()) if state_path.is_file() else []
    if key in seen:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    content = json.dumps(result.as_dict(), indent=1).encode()
    digest = hashlib.sha256(content).hexdigest()
    report = (project / REPORTS / f"{resolved.spec.name}-{resolved.spec.version}-{stamp}-{digest[:12]}.json").resolve()
    report.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(report, content)
    write_atomic(state_path, json.dumps([*seen, key][-1000:]))
    return {
        "type": "drift",
        "model": resolved.spec.name,
        "version": int(resolved.spec.version),
        "alias": trigger.alias,
        "report": f"sha256:{digest}",
        "report_file": str(report),
        "drifted": latest.drifted,
        "quality": latest.quality,
    }
