"""Drift on a field the payload log keeps only as a hash (``serve --log-hash region``).

The risk model is served in process, every request logged with ``region`` hashed (HMAC with
``$CONVEYOR_PAYLOAD_HASH_KEY``); its reference profile holds the plain regions of one half of the
data.  Traffic from the other half raises no alarm on the hashed column, in ``conveyor monitor``'s
judgement and on the server's own drift gauges; a real shift of the regions (most rows from the
north) is still seen, because a hashed category keeps its frequencies.  Judged with another key
than the log's, the column is left out with a note instead of alarming forever.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.test_monitoring import halves, risk_folder  # noqa: F401  (fixtures)

WINDOW = 100
KEY = "a-secret-the-log-and-the-judge-share"


def _serve_and_send(model: Path, logs: Path, rows: list[dict[str, object]]) -> str:
    """``rows`` through the server's own app with a payload log hashing ``region``; its /metrics after."""
    from conveyor.serving.app import create_app
    from conveyor.serving.server import plane_for
    from conveyor.serving.settings import ServeSettings

    settings = ServeSettings(
        model=str(model), log_payloads=str(logs), log_sample=1.0, log_hash=["region"], drift_window=WINDOW
    )
    with TestClient(create_app(plane_for(settings), load_before_serving=True)) as client:
        for start in range(0, len(rows), 5):
            assert client.post("/predict", json=rows[start : start + 5]).status_code == 200
        metrics = client.get("/metrics").text
    return metrics  # the server stopped: its log files are finished


def _region_gauge(metrics: str, name: str, version: str) -> float:
    wanted = f'{name}{{column="feature.region",model="hashed-{version}",version="1"}}'
    values = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(wanted)]
    assert values, f"no {wanted} in /metrics"
    return values[-1]


def test_a_hashed_category_is_judged_as_hashes_calm_when_alike_and_drifted_when_it_shifts(
    risk_folder: Path,  # noqa: F811
    halves,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    from conveyor.monitoring.drift import Thresholds
    from conveyor.monitoring.observe import Observer
    from conveyor.monitoring.profile import PROFILE_FILE, profile_of
    from conveyor.monitoring.run import monitor_log
    from conveyor.serving.spec import resolve_model

    monkeypatch.setenv("CONVEYOR_PAYLOAD_HASH_KEY", KEY)
    folder, _, rest = halves
    results = {}
    for version, traffic in (("alike", rest), ("shifted", rest.assign(region=["north"] * 150 + ["south"] * 71))):
        model = tmp_path / version
        shutil.copytree(risk_folder, model)
        (model / "model.yaml").write_text(
            (model / "model.yaml").read_text().replace("name: risk", f"name: hashed-{version}")
        )
        observer = Observer(resolve_model(str(model)))
        profile_of(observer.reference_columns(folder / "reference.csv"), source="reference.csv").save(
            model / PROFILE_FILE
        )
        logs = tmp_path / f"logs-{version}"
        metrics = _serve_and_send(model, logs, json.loads(traffic.to_json(orient="records")))
        logged = [json.loads(line) for path in logs.rglob("*.jsonl") for line in path.read_text().splitlines()]
        assert {row["region"][:7] for record in logged for row in record["inputs"]} == {"sha256:"}  # no region kept
        result = monitor_log(resolve_model(str(model)), str(logs), None, WINDOW, Thresholds())
        judged = [w for w in result.windows if w.judged]
        region = [next(c for c in w.columns if c.name == "feature.region") for w in judged]
        results[version] = (result, region, metrics)
        print(version, [c.psi for c in region], _region_gauge(metrics, "conveyor_drift_psi", version))

    alike, alike_region, alike_metrics = results["alike"]
    assert len(alike_region) == 2 and not any(c.drifted for c in alike_region), alike_region
    assert max(c.psi for c in alike_region) < 0.1  # not the PSI 17 of hashes against values
    assert "feature.region: logged as a hash" in " ".join(alike.notes)
    assert _region_gauge(alike_metrics, "conveyor_drift_detected", "alike") == 0

    shifted, shifted_region, shifted_metrics = results["shifted"]
    assert shifted_region[0].drifted and "feature.region" in shifted.latest.drifted  # type: ignore[union-attr]
    assert _region_gauge(shifted_metrics, "conveyor_drift_detected", "shifted") == 1

    monkeypatch.setenv("CONVEYOR_PAYLOAD_HASH_KEY", "another-key")  # a judge without the log's key
    other = monitor_log(
        resolve_model(str(tmp_path / "shifted")), str(tmp_path / "logs-shifted"), None, WINDOW, Thresholds()
    )
    assert all(c.name != "feature.region" for w in other.windows for c in w.columns)
    assert "the log was hashed with another key" in " ".join(other.notes)


def test_the_table_names_a_hashed_category_by_its_first_12_digits() -> None:
    """64 hex digits filled the reference column at 80 columns (one digit a line); 12 tell categories apart."""
    from conveyor.cli.monitor import _short

    digest = "sha256:" + "fdff48143aeb" + "0" * 52
    assert _short(digest) == "sha256:fdff48143aeb"
    assert _short("north") == "north" and _short("sha256:short") == "sha256:short"
