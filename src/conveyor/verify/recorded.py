"""``conveyor verify --record``: the outcome kept on the registered version it verified.

A version's tags then say whether it passed (``verify=passed|failed``, ``verify.checks=PASSED/RUN``,
``verify.at``), beside a challenge's verdict; a version imported from MLflow has the same tags
written back to its MLflow version (``conveyor.verify=...``, ``interop/mlflow_mirror.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from conveyor.errors import InvalidInput
from conveyor.verify.checks import CheckResult
from conveyor.verify.reports import ok


def outcome_tags(results: list[CheckResult]) -> dict[str, str]:
    ran = [r for r in results if r.status != "skipped"]
    passed = sum(r.status == "passed" for r in ran)
    return {
        "verify": "passed" if ok(results) else "failed",
        "verify.checks": f"{passed}/{len(ran)}",
        "verify.at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def record_outcome(target: str, results: list[CheckResult]) -> str:
    """Tag the registered version TARGET names with the outcome; returns its ``name:version``."""
    from conveyor.registry.config import open_registry
    from conveyor.serving.fetch import is_registry_ref

    if not is_registry_ref(target):
        raise InvalidInput(f"--record keeps the outcome on a registered version: {target} is not a registry reference")
    registry = open_registry()
    version = registry.resolve(target)
    registry.set_tags(version.name, version.version, outcome_tags(results), [])
    return version.ref
