"""The loop, three times in a row: every cycle's drift starts a run that exports that cycle's
labelled traffic, retrains on it, registers the new version (its reference profile made from the
rows it was trained on, unasked), challenges the live version on that cycle's held-out rows and
promotes the winner; and after each promotion ``conveyor monitor churn@production`` still works.

A tiny churn classifier (one number, one category): the world moves each cycle (``tenure`` shifts
by three standard deviations and the label's threshold with it), so the live version drifts and
is wrong about half the time, and a version retrained on the new rows beats it.  Traffic goes
through the server's own app in process, logging every request; each step of the pipeline is one
process (the CLI, the retraining script, a step type), as ``conveyor pipeline watch`` runs them.
Each run works in its own folder (``${{ run.artifacts }}``), so no step can reuse an earlier
cycle's file: the test checks the rows each challenge judged are that cycle's (by request id and
by the file's digest in the candidate's lineage).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from starlette.testclient import TestClient
from typer.testing import CliRunner

ROWS = 300  # per cycle: two windows of 150
WINDOW = 150
PER_REQUEST = 10

RETRAIN = """
import sys
import joblib, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

rows, out = pd.read_csv(sys.argv[1]), sys.argv[2]
features = ["tenure", "plan"]
plans = OneHotEncoder(handle_unknown="ignore")
prep = ColumnTransformer([("num", StandardScaler(), ["tenure"]), ("cat", plans, ["plan"])])
model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(rows[features], rows["label"])
joblib.dump(model, f"{out}/churn.joblib")
rows[features].to_csv(f"{out}/training.csv", index=False)  # the rows it was trained on
print(f"trained on {len(rows)} rows")
"""


def _world(cycle: int, rows: int) -> pd.DataFrame:
    """Cycle 0 is what churn:1 was trained on; each later cycle's customers stay three std longer."""
    rng = np.random.default_rng(cycle)
    tenure = rng.normal(3.0 * cycle, 1.0, rows).round(3)
    plan = rng.choice(["basic", "plus", "family"], rows)
    label = np.where(tenure + rng.normal(0, 0.3, rows) > 3.0 * cycle, "churn", "stay")
    return pd.DataFrame({"tenure": tenure, "plan": plan, "label": label})


def _pipeline(logs: Path) -> dict:  # type: ignore[type-arg]
    conveyor = f"{sys.executable} -m conveyor.cli.main"
    files = "${{ run.artifacts }}"
    return {
        "params": {"model": "churn@production", "drift_report": "none"},
        "triggers": [{"drift": {"model": "churn", "logs": str(logs), "every": "1s", "window": WINDOW}}],
        "steps": {
            "export": {
                "run": f"{conveyor} monitor ${{{{ params.model }}}} --logs {logs} --window {WINDOW} --no-fail-on-drift "
                f"--export-labelled {files}/live.csv --export-holdout {files}/holdout.csv"
            },
            "retrain": {"needs": ["export"], "run": f"{sys.executable} retrain.py {files}/live.csv {files}"},
            "register": {
                "needs": ["retrain"],
                "run": f"{conveyor} models register {files}/churn.joblib --name churn --alias candidate --sample "
                f"{files}/training.csv --reference {files}/training.csv --positive-label churn "
                "--property drift_report=${{ params.drift_report }}",
            },
            "challenge": {
                "needs": ["register"],
                "uses": "challenge",
                "with": {"candidate": "churn@candidate", "labelled": f"{files}/holdout.csv"},
            },
            "promote": {
                "needs": ["challenge"],
                "run": f"{conveyor} models alias set churn@production ${{{{ steps.challenge.outputs.version }}}}",
            },
        },
    }


def _serve(logs: Path, frame: pd.DataFrame, cycle: int, feedback: bool = True) -> None:
    """``frame``'s rows through churn@production's own server app, logged; then the true labels as feedback."""
    from conveyor.serving.app import create_app
    from conveyor.serving.fetch import resolve_served
    from conveyor.serving.server import plane_for
    from conveyor.serving.settings import ServeSettings

    resolved = resolve_served("churn@production")
    settings = ServeSettings(model=str(resolved.model_path.parent), log_payloads=str(logs), log_sample=1.0)
    rows = json.loads(frame.drop(columns=["label"]).to_json(orient="records"))
    with TestClient(create_app(plane_for(settings, resolved), load_before_serving=True)) as client:
        for start in range(0, len(rows), PER_REQUEST):
            request_id = f"c{cycle}-{start // PER_REQUEST}"
            answer = client.post(
                "/predict", json=rows[start : start + PER_REQUEST], headers={"X-Request-Id": request_id}
            )
            assert answer.status_code == 200, answer.text
            truth = list(frame["label"][start : start + PER_REQUEST])
            assert (
                not feedback
                or client.post("/feedback", json=[{"request_id": request_id, "labels": truth}]).status_code == 202
            )


def _monitor_production(logs: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    from conveyor.cli.main import app

    result = CliRunner().invoke(
        app, ["monitor", "churn@production", "--logs", str(logs), "--window", str(WINDOW), "--json"]
    )
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONVEYOR_REGISTRY", "")
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    (folder / "retrain.py").write_text(RETRAIN)
    return folder


def test_the_loop_runs_three_cycles_in_a_row_each_on_its_own_fresh_rows(project: Path, tmp_path: Path) -> None:
    import hashlib
    import subprocess

    from conveyor.pipeline.drift_watch import check_drift
    from conveyor.pipeline.spec import load_project
    from conveyor.pipeline.watch import Watcher
    from conveyor.registry.config import open_registry

    logs = tmp_path / "logs"
    first = tmp_path / "first"
    first.mkdir()
    _world(0, ROWS).to_csv(first / "rows.csv", index=False)
    subprocess.run([sys.executable, "retrain.py", first / "rows.csv", first], check=True, capture_output=True)
    from conveyor.cli.main import app

    first_version = [str(first / "churn.joblib"), "--name", "churn", "--alias", "production"]
    first_version += ["--sample", str(first / "training.csv"), "--reference", str(first / "training.csv")]
    first_version += ["--positive-label", "churn"]
    registered = CliRunner().invoke(app, ["models", "register", *first_version])
    assert registered.exit_code == 0, registered.output
    (project / "conveyor.yaml").write_text(yaml.safe_dump({"pipelines": {"retrain": _pipeline(logs)}}))
    pipelines = load_project(project / "conveyor.yaml").pipelines
    watcher = Watcher(pipelines, project, lambda name, record: None)
    (trigger,) = [t for t in watcher.polled_triggers()]
    registry = open_registry()

    for cycle in (1, 2, 3):
        _serve(logs, _world(cycle, ROWS), cycle)
        code, report = _monitor_production(logs)  # the version promoted last cycle has its profile
        assert (code, report["version"], report["drift"]) == (1, str(cycle), True), report
        event = check_drift(trigger, project)
        assert event is not None and "feature.tenure" in event["drifted"], event
        ((_, record),) = watcher.handle(event)
        steps = {name: (step.status, step.message) for name, step in record.run.steps.items()}
        assert record.status == "success", steps

        live = registry.resolve("churn@production")
        assert live.version == cycle + 1
        assert live.lineage.run_id == record.id  # the run that made it
        report_file = Path(event["report_file"])
        assert report_file.is_absolute() and live.properties["drift_report"] == event["report"]
        assert event["report"] == "sha256:" + hashlib.sha256(report_file.read_bytes()).hexdigest()
        assert {"monitoring/profile.json", "monitoring/reference-sample.json"} <= {f.path for f in live.files}

        held_out = pd.read_csv(record.artifacts / "holdout.csv")
        trained = pd.read_csv(record.artifacts / "live.csv")
        assert len(held_out) == round(ROWS * 0.3) and len(trained) == ROWS - len(held_out)
        for rows in (held_out, trained):  # this cycle's traffic, nothing older
            assert {rid.split("-")[0] for rid in rows["request_id"]} == {f"c{cycle}"}
        tags = live.tags
        labelled = "sha256:" + hashlib.sha256((record.artifacts / "holdout.csv").read_bytes()).hexdigest()
        assert tags["challenge"] == "passed" and tags["challenge.labelled"] == labelled
        assert tags["challenge.items"] == str(len(held_out)) and tags["challenge.champion"] == f"churn:{cycle}"
        assert float(tags["challenge.accuracy"]) > float(tags["challenge.champion_accuracy"])

    _serve(logs, _world(3, WINDOW), 4)  # what churn:4 was trained for: calm
    code, report = _monitor_production(logs)
    assert (code, report["version"], report["drift"]) == (0, "4", False), report

    # no feedback yet: an export fails, naming what is missing, and writes nothing a later step could take
    _serve(tmp_path / "unlabelled", _world(3, 20), 5, feedback=False)
    export = ["--logs", str(tmp_path / "unlabelled"), "--export-labelled", str(tmp_path / "live.csv")]
    nothing = CliRunner().invoke(app, ["monitor", "churn@production", *export])
    assert nothing.exit_code == 4 and "no labelled traffic for" in nothing.output, nothing.output
    assert not (tmp_path / "live.csv").exists()

    # a loop that forgets the reference is stopped at the challenge, before anything moves
    files = record.artifacts
    forgetful = [str(files / "churn.joblib"), "--name", "churn", "--sample", str(files / "training.csv")]
    unwatched = CliRunner().invoke(app, ["models", "register", *forgetful, "--positive-label", "churn"])
    assert unwatched.exit_code == 0, unwatched.output
    refused = CliRunner().invoke(app, ["models", "challenge", "churn:5", "--labelled", str(files / "holdout.csv")])
    assert refused.exit_code == 1 and "churn:5 keeps no reference profile" in refused.output, refused.output
    assert registry.resolve("churn@production").version == 4
