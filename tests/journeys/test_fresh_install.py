"""Journey: the wheel as users install it, with its extras resolved fresh from the index.

The suite runs on ``requirements.lock``; a user's ``pip install 'conveyor-ml[sklearn]'`` takes
the newest versions the ranges allow. Once, protobuf 7 slipped in that way and every
HistGradientBoosting conversion failed inside skl2onnx while the whole suite passed on the lock
(the ranges now leave it out, docs/models.md). So this venv installs the built wheel with no
constraint at all, and the versions it got are named in every failure here: a new release
that breaks a user breaks this test first, and says which one.

In that venv, HistGradientBoosting classifier and regressor Pipelines (imputed numbers with
NaN, one-hot strings, ``handle_unknown="ignore"``), trained here on data of a user's kind, go
register -> serve (/predict by curl with pandas' records, v2 by tritonclient with binary NaN)
-> verify -> image -> verify --image -> canary of an honest retrain; a few more of the zoo
(a forest Pipeline, scikit-learn's default OneHotEncoder, XGBoost and LightGBM with missing
values) pass the gate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from packaging.version import Version

from tests.conftest import free_port
from tests.journeys.conftest import UV, User, wait_http
from tests.rollout_fixtures import Load
from tests.test_packaging import base_image, podman  # noqa: F401 (base_image: a fixture)

EXTRAS = "sklearn,xgboost,lightgbm,router,build"  # registering, `conveyor router`, `conveyor build`
WATCHED = ("protobuf", "onnx", "onnxruntime", "skl2onnx", "onnxmltools", "scikit-learn", "numpy", "pandas",
           "xgboost-cpu", "lightgbm")  # fmt: skip
CITIES = ["Berlin", "Lyon", "Oslo", "Porto", "Riga"]
PLANS = ["basic", "gold", "silver"]
FAST = ["--steps", "50,100", "--interval", "2s", "--min-requests", "10", "--min-compared", "5"]
FAST += ["--p99-floor-ms", "2000"]


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``conveyor-ml[sklearn,xgboost,lightgbm,router,build]`` from the wheel, no ``--constraint``."""
    venv = tmp_path_factory.mktemp("user-fresh") / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    requirement = f"conveyor-ml[{EXTRAS}] @ {wheel.as_uri()}"
    install = [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), requirement]
    subprocess.run(install, check=True, timeout=600)
    return venv


def _installed(venv: Path) -> dict[str, str]:
    listing = subprocess.run(
        [str(UV), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {entry["name"].lower(): entry["version"] for entry in json.loads(listing.stdout)}


@dataclass
class FreshUser(User):
    """A user of the freshly resolved venv: every failed command names the versions it ran on."""

    versions: str = ""

    def ok(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, env=env)
        command = f"conveyor {' '.join(args)}"
        assert result.returncode == 0, (
            f"on {self.versions}: {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
        return result


def customers(rows: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """A user's table: ages and incomes with gaps (NaN), cities and plans as strings; churn and spend."""
    import pandas as pd

    random = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": random.integers(18, 80, rows).astype(float),
            "income": random.normal(52_000, 15_000, rows).round(0),
            "city": random.choice(CITIES, rows),
            "plan": random.choice(PLANS, rows),
        }
    )
    spend = frame.income / 20_000 + (frame.plan == "gold") * 1.5 + (frame.city == "Oslo") * 0.8 - (frame.age - 50) / 40
    spend = spend.to_numpy() + random.normal(0, 0.15, rows)
    frame.loc[random.random(rows) < 0.1, "income"] = np.nan
    frame.loc[random.random(rows) < 0.08, "age"] = np.nan
    return frame, np.where(spend > np.median(spend), "churn", "stay"), spend


def _pipeline(estimator: Any, unknown: str = "ignore", scaled: bool = False) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()) if scaled else SimpleImputer()
    prep = ColumnTransformer(
        [
            ("numbers", numbers, ["age", "income"]),
            ("categories", OneHotEncoder(handle_unknown=unknown), ["city", "plan"]),
        ]
    )
    return Pipeline([("prep", prep), ("model", estimator)])


@dataclass
class Models:
    """What the user brings: model files, the evaluation rows, and the originals to compare with."""

    folder: Path
    evaluation: Any  # the frame whose first 100 rows are rows.csv
    originals: dict[str, Any]  # "churn-1" -> the fitted Pipeline

    @property
    def rows_csv(self) -> Path:
        return self.folder / "rows.csv"

    def file(self, name: str) -> str:
        return str(self.folder / f"{name}.joblib")


def _train(folder: Path) -> Models:
    """Version 1 on 2,000 customers; version 2, an honest retrain, on those and 400 new ones."""
    import joblib
    import lightgbm
    import pandas as pd
    import xgboost
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    frame, churn, spend = customers(2000, 45)
    more, more_churn, more_spend = customers(400, 46)
    both, both_churn, both_spend = (
        pd.concat([frame, more]),
        np.concatenate([churn, more_churn]),
        np.r_[spend, more_spend],
    )
    evaluation, _, _ = customers(200, 47)
    hgb_c = lambda: _pipeline(HistGradientBoostingClassifier(max_iter=30, random_state=0))  # noqa: E731
    hgb_r = lambda: _pipeline(HistGradientBoostingRegressor(max_iter=30, random_state=0))  # noqa: E731
    numbers = ["age", "income"]
    originals = {
        "churn-1": hgb_c().fit(frame, churn),
        "churn-2": hgb_c().fit(both, both_churn),
        "spend-1": hgb_r().fit(frame, spend),
        "spend-2": hgb_r().fit(both, both_spend),
        "forest": _pipeline(RandomForestClassifier(20, max_depth=6, random_state=0)).fit(frame, churn),
        "logistic": _pipeline(LogisticRegression(), unknown="error", scaled=True).fit(frame, churn),
        "xgb": xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(frame[numbers], churn == "churn"),
        "lgb": lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(frame[numbers], spend),
    }
    for name, model in originals.items():
        joblib.dump(model, folder / f"{name}.joblib")
    evaluation.head(100).to_csv(folder / "rows.csv", index=False)
    evaluation[numbers].head(100).to_csv(folder / "numbers.csv", index=False)
    return Models(folder, evaluation, originals)


def _records(frame: Any) -> list[dict[str, Any]]:
    """Rows as pandas sends them (NaN is null)."""
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]


def _curl_predict(url: str, rows: list[dict[str, Any]]) -> tuple[int, Any]:
    answered = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary", "@-",
         url + "/predict"],
        input=json.dumps(rows).encode(),
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    text, _, status = answered.stdout.decode().rpartition("\n")
    return int(status), json.loads(text)


def _v2_by_tritonclient(url: str, name: str, frame: Any) -> dict[str, np.ndarray]:
    """One input per column as the served metadata declares it, binary tensors (NaN for a missing number)."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        declared = {i["name"]: i["datatype"] for i in client.get_model_metadata(name)["inputs"]}
        inputs = []
        for column, datatype in declared.items():
            tensor = triton.InferInput(column, [len(frame)], datatype)
            if datatype == "BYTES":
                tensor.set_data_from_numpy(np.array([v.encode() for v in frame[column]], dtype=object))
            else:
                tensor.set_data_from_numpy(
                    frame[column].to_numpy(dtype={"FP32": np.float32, "FP64": np.float64}[datatype])
                )
            inputs.append(tensor)
        result = client.infer(name, inputs)
        return {o["name"]: result.as_numpy(o["name"]) for o in result.get_response()["outputs"]}
    finally:
        client.close()


def _serves_as_the_original(person: FreshUser, name: str, models: Models) -> None:
    """/predict (curl, records with null, an unseen city) and v2 (tritonclient) answer as the Pipeline does."""
    original = models.originals[f"{name}-1"]
    asked = models.evaluation.head(8).copy()
    asked.loc[asked.index[0], "income"] = np.nan  # pandas' records write it as null
    asked.loc[asked.index[1], "city"] = "Tallinn"  # a city the model never saw
    assert asked.isna().any(axis=1).sum() >= 1
    expected = original.predict(asked)
    server = person.serve(f"{name}:1")
    try:
        status, answer = _curl_predict(server.url, _records(asked))
        assert status == 200, f"on {person.versions}: {answer}"
        outputs = _v2_by_tritonclient(server.url, name, asked)
    finally:
        server.stop()
    if name == "churn":
        assert [a["label"] for a in answer] == list(expected), (person.versions, answer)
        assert [v.decode() if isinstance(v, bytes) else v for v in outputs["label"]] == list(expected)
    else:
        np.testing.assert_allclose(
            [a["value"] for a in answer], expected, rtol=1e-4, atol=1e-4, err_msg=person.versions
        )
        np.testing.assert_allclose(np.ravel(outputs["value"]), expected, rtol=1e-4, atol=1e-4)


def _verified(person: FreshUser, *target: str) -> None:
    report = person.run("verify", *target, "--json")
    checks = json.loads(report.stdout)["checks"]
    failed = [(c["id"], c["message"]) for c in checks if c["status"] not in ("passed", "skipped")]
    assert report.returncode == 0, f"on {person.versions}: verify {' '.join(target)}: {failed}"


def _images(person: FreshUser, base: str, wheelhouse: Path) -> None:
    """Each model's image (`conveyor build`, the run's wheelhouse), and `verify --image` on it."""
    for name in ("churn", "spend"):
        tag = f"localhost/fresh-{name}:1"
        person.ok(
            "build", f"{name}:1", "--tag", tag, "--base-image", base, env={"CONVEYOR_WHEELHOUSE": str(wheelhouse)}
        )
        try:
            _verified(person, tag, "--image", "--skip", "lint.*")
        finally:
            subprocess.run(["podman", "rmi", tag], capture_output=True, timeout=120)


def _canary(person: FreshUser, name: str, rows: list[dict[str, Any]]) -> None:
    """name:1 stable behind `conveyor router`, name:2 (the retrain) canaried under load and promoted."""
    port = free_port()
    router = person.spawn("router", "--service", name, "--port", str(port), "--health-interval", "0.2", name="router")
    router.url = f"http://127.0.0.1:{port}"
    wait_http(router, "/_conveyor/health")
    person.ok("rollout", "start", f"{name}:1", "--service", name, "--router", router.url)
    with Load(router.url, rows=rows) as load:
        result = person.run("rollout", "start", f"{name}:2", "--service", name, "--router", router.url, *FAST)
    status = json.loads((Path(person.env["CONVEYOR_HOME"]) / "rollouts" / name / "status.json").read_text())
    assert result.returncode == 0 and status["phase"] == "succeeded", (
        f"on {person.versions}: {result.stdout}\n{result.stderr}\n{status['analysis']}"
    )
    assert load.errors == 0, load.seen


@podman
@pytest.mark.slow(seconds=290)
@pytest.mark.timeout(600)  # about 100 s alone; a loaded CI machine's four workers on two cores stretch it
def test_hist_gradient_boosting_goes_the_whole_way_on_the_newest_versions_the_ranges_allow(
    fresh_venv: Path,
    base_image: str,  # noqa: F811
    shared_wheelhouse: Path,
    tmp_path: Path,
) -> None:
    got = _installed(fresh_venv)
    versions = ", ".join(f"{name} {got.get(name, 'missing')}" for name in WATCHED)
    print(f"fresh resolve: {versions}")
    assert all(name in got for name in WATCHED), versions
    assert Version(got["protobuf"]).major < 7, f"the sklearn extra's range lets protobuf 7 in: {versions}"
    home = {"CONVEYOR_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    person = FreshUser(fresh_venv, tmp_path / "project", home, versions=versions)
    person.workdir.mkdir()
    models = _train(person.workdir)
    evaluated = ["--sample", str(models.rows_csv), "--reference", str(models.rows_csv)]

    def register(name: str, *args: str) -> None:
        result = person.ok("models", "register", models.file(name), "--name", name.split("-")[0], *args)
        assert "gate passed" in result.stderr, f"on {versions}: {result.stderr}"

    def zoo() -> None:
        for name in ("forest", "logistic"):
            register(name, *evaluated)
        for name in ("xgb", "lgb"):  # on the numbers alone, NaN left to the booster
            register(name, "--sample", str(models.folder / "numbers.csv"))

    def served_and_verified(name: str) -> None:
        _serves_as_the_original(person, name, models)
        _verified(person, f"{name}:1")

    # Two cores: two lanes of work at a time, the image builds (mostly podman waiting) beside them.
    with ThreadPoolExecutor(4) as pool:

        def together(*calls: Callable[[], None]) -> None:
            for done in [pool.submit(call) for call in calls]:
                done.result()

        try:
            together(lambda: register("churn-1", *evaluated), lambda: register("spend-1", *evaluated))
            images = pool.submit(_images, person, base_image, shared_wheelhouse)
            together(lambda: register("churn-2", *evaluated), lambda: register("spend-2", *evaluated))
            rest = pool.submit(zoo)
            together(lambda: served_and_verified("churn"), lambda: served_and_verified("spend"))
            rows = _records(models.evaluation.head(60))  # with nulls: the rows as pandas sends them
            together(lambda: _canary(person, "churn", rows), lambda: _canary(person, "spend", rows))
            rest.result()
            images.result()
        finally:
            for name in ("churn", "spend"):
                person.run("rollout", "down", name)
            person.close()
