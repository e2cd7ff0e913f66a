"""The loop after a rollout, end to end: drift in production starts a retraining, the retrained
version is judged against the live one on labelled traffic it never trained on, and only a
better one goes out by canary.

The live version (risk:1) was trained on the younger half of the patients; production then sends
the older half, through a real router to a real server that logs every request, and a client
sends the true labels back (``POST /feedback``).  ``conveyor pipeline watch`` finds the drift on
``age`` and runs ``retrain``: export the labelled traffic (the most recent 30% held out), retrain
on the old data plus the rest, register the candidate, challenge it on the held-out traffic, roll
it out by canary.  A second run whose retraining is broken (labels shuffled) is refused by the
challenge and never reaches the router.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.rollout_fixtures import Load, kill_backends, start_router
from tests.tabular_models import risk_frame

WINDOW = 150
ROWS_PER_REQUEST = 5
PYTHON = sys.executable

RETRAIN = """
import sys
import joblib, numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

features = ["age", "bmi", "bp", "sex", "region"]
data = pd.read_csv("training.csv")
if len(sys.argv) > 1:  # served traffic, labelled by feedback
    data = pd.concat([data, pd.read_csv(sys.argv[1])[features + ["label"]]])
if "shuffled" in sys.argv:  # a broken retraining: features and labels apart
    data["label"] = np.random.default_rng(0).permutation(data["label"].values)
prep = ColumnTransformer(
    [("num", StandardScaler(), features[:3]), ("cat", OneHotEncoder(handle_unknown="ignore"), features[3:])]
)
model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(data[features], data["label"])
joblib.dump(model, "risk.joblib")
data[features].to_csv("reference.csv", index=False)
print(f"trained on {len(data)} rows")
"""

CANARY = "--steps 50,100 --interval 2s --min-requests 10 --min-compared 5 --p99-floor-ms 2000 --min-agreement 0.5"


def _pipeline(logs: Path, router: str, serve: str) -> dict:  # type: ignore[type-arg]
    conveyor = f"{PYTHON} -m conveyor.cli.main"
    register = f"{conveyor} models register risk.joblib --name risk --alias candidate --sample reference.csv "
    register += "--positive-label high --reference reference.csv --property drift_report=${{ params.drift_report }}"
    export = f"{conveyor} monitor ${{{{ params.model }}}} --logs {logs} --export-labelled live.csv"
    return {
        "params": {"model": "risk@production", "drift_report": "none", "retrain": ""},
        "triggers": [{"drift": {"model": "risk", "logs": str(logs), "every": "1s", "window": WINDOW}}],
        "steps": {
            # the drift is what this run was started for; the export is what counts
            "export": {"run": f"{export} --export-holdout holdout.csv --no-fail-on-drift"},
            "retrain": {"needs": ["export"], "run": f"{PYTHON} retrain.py live.csv ${{{{ params.retrain }}}}"},
            "register": {"needs": ["retrain"], "run": register},
            "challenge": {
                "uses": "challenge",
                "needs": ["register"],
                "with": {"candidate": "risk@candidate", "labelled": "holdout.csv"},
            },
            "canary": {
                "needs": ["challenge"],
                "run": f"{conveyor} rollout start ${{{{ steps.challenge.outputs.ref }}}} --service risk "
                f"--router {router} --command '{serve}' {CANARY}",
            },
        },
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    frame, labels = risk_frame()
    frame = frame.assign(label=labels)
    folder = tmp_path / "project"
    folder.mkdir()
    young, old = frame[frame.age <= frame.age.median()], frame[frame.age > frame.age.median()]
    young.to_csv(folder / "training.csv", index=False)
    (folder / "retrain.py").write_text(RETRAIN)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))  # the router's too
    monkeypatch.setenv("CONVEYOR_REGISTRY", "")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    yield folder, env, old.sample(frac=1, random_state=3)
    kill_backends(tmp_path / "home")


def test_drift_starts_a_retraining_that_beats_the_live_version_and_goes_out_by_canary_and_a_worse_one_is_refused(
    project, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder, env, old = project
    logs = tmp_path / "logs"

    def conveyor(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The CLI in its own process group: a timeout kills the steps it started too (a rollout left running)."""
        command = [PYTHON, "-m", "conveyor.cli.main", *args]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def ok(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = conveyor(*args, timeout=timeout)
        assert result.returncode == 0, f"conveyor {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    subprocess.run([PYTHON, "retrain.py"], cwd=folder, check=True, capture_output=True, timeout=120)
    ok("models", "register", "risk.joblib", "--name", "risk", "--alias", "production", "--sample", "reference.csv",
       "--positive-label", "high", "--reference", "training.csv")  # fmt: skip
    serve = f"{PYTHON} -m conveyor.cli.main serve {{ref}} --host 127.0.0.1 --port {{port}} --log-payloads {logs} "
    serve += "--log-sample 1 --log-rotate-seconds 1"  # files the watch can read within a second
    router = start_router(tmp_path, "risk")
    try:
        ok("rollout", "start", "risk@production", "--service", "risk", "--router", router.url, "--command", serve)
        rows = json.loads(old.drop(columns=["label"]).to_json(orient="records"))
        truth = list(old["label"])
        with httpx.Client(base_url=router.url, timeout=10) as client:
            for start in range(0, len(rows), ROWS_PER_REQUEST):
                answer = client.post("/predict", json=rows[start : start + ROWS_PER_REQUEST])
                assert answer.status_code == 200, answer.text
                labels = truth[start : start + ROWS_PER_REQUEST]
                sent = client.post("/feedback", json=[{"request_id": answer.headers["x-request-id"], "labels": labels}])
                assert sent.status_code == 202, sent.text
        spec = {"pipelines": {"retrain": _pipeline(logs, router.url, serve)}}
        (folder / "conveyor.yaml").write_text(yaml.safe_dump(spec))

        with Load(router.url, rows=rows[:60]) as load:  # production keeps calling during the canary
            watched = ok("pipeline", "watch", "--once", timeout=600)
        assert "event drift risk:1 (feature.age" in watched.stdout, watched.stdout
        assert load.errors == 0, load.seen
        production = json.loads(ok("models", "show", "risk@production", "--json").stdout)
        assert production["version"] == 2
        tags, properties = production["tags"], production["properties"]
        assert tags["challenge"] == "passed" and tags["challenge.champion"] == "risk:1"
        assert float(tags["challenge.accuracy"]) >= float(tags["challenge.champion_accuracy"])
        digest = properties["drift_report"].removeprefix("sha256:")  # the lineage names the report by content
        (report_file,) = (folder / ".conveyor" / "drift-reports").glob(f"*-{digest[:12]}.json")
        assert hashlib.sha256(report_file.read_bytes()).hexdigest() == digest
        report = json.loads(report_file.read_text())
        judged = [w for w in report["windows"] if w["judged"]]
        assert report["drift"] is True and "feature.age" in judged[-1]["drifted"]
        held_out = len((folder / "holdout.csv").read_text().splitlines()) - 1
        trained_on = len((folder / "live.csv").read_text().splitlines()) - 1
        assert held_out == round(len(rows) * 0.3) and trained_on == len(rows) - held_out
        assert json.loads(ok("rollout", "status", "risk", "--json").stdout)["phase"] == "succeeded"

        # the same loop, its retraining broken: refused by the challenge, production untouched
        report_path = properties["drift_report"]
        refused = conveyor("pipeline", "run", "retrain", "-p", "model=risk:1", "-p", f"drift_report={report_path}",
                           "-p", "retrain=shuffled", "--json", timeout=600)  # fmt: skip
        assert refused.returncode == 1, refused.stdout + refused.stderr
        steps = json.loads(refused.stdout)["steps"]
        assert steps["challenge"]["status"] == "failure" and steps["canary"]["status"] == "skipped", steps
        worse = json.loads(ok("models", "show", "risk:3", "--json").stdout)
        assert worse["tags"]["challenge"] == "refused" and worse["tags"]["challenge.champion"] == "risk:2"
        assert json.loads(ok("models", "show", "risk@production", "--json").stdout)["version"] == 2
        status = json.loads(ok("rollout", "status", "risk", "--json").stdout)
        assert status["ref"] == "risk:2" and status["phase"] == "succeeded", status  # the last rollout: the good one
    finally:
        conveyor("rollout", "down", "risk")
        router.stop()
