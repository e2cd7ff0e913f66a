"""Journey: a team's MLflow model registry feeds Conveyor's, from the installed wheel.

A real ``mlflow server`` runs on 127.0.0.1 with a SQLite backend and its own artifact store (the
team's MLflow, in the developer's environment, as the models are trained there with
``mlflow.sklearn.log_model``).  The user, with ``conveyor-ml[sklearn,mlflow]`` from the wheel:

- ``conveyor models import mlflow://HOST:PORT/cancer@champion``: the files with MLflow's checksums,
  the run's metrics and parameters in the lineage, the model through the conversion gate, served
  with the same answers as the scikit-learn model; importing again registers nothing;
- the ONNX flavor, registered as it is;
- bad references, an unknown version and a server that is down: one line each, no traceback;
- ``conveyor pipeline watch`` with an ``mlflow`` trigger: MLflow's own webhook announces a version
  logged later (the trigger polls only every hour), it is imported and the pipeline runs on it; verified
  (``--record``) and promoted in Conveyor, the MLflow version shows Conveyor's tags and the MLflow alias
  asked for moves; a watch restarted after two versions were logged imports both;
- a client of ``mlflow models serve`` gets MLflow's answers from ``/invocations``; a pyfunc model is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, free_port
from tests.journeys.conftest import UV, User
from tests.waiting import wait_for

MLFLOW = Path(sys.executable).parent / "mlflow"


@dataclass
class Mlflow:
    url: str
    artifacts: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed at teardown)
    store = ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")]
    webhooks = {  # MLflow calls only https and public addresses by default; the watch here is on loopback
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",  # a new webhook is seen within a second, not a minute
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    process = subprocess.Popen(
        [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *store],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
        env={**os.environ, **webhooks},
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, (root / "server.log").read_text()[-3000:]
        return httpx.get(url + "/health", timeout=2).status_code == 200

    wait_for(healthy, timeout=300, what="mlflow server")  # its first start imports a lot: minutes on a busy machine
    yield Mlflow(url, root / "art", process)
    process.terminate()
    process.wait(timeout=30)
    log.close()


def _cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True, as_frame=True)  # type: ignore[return-value]


def _log(url: str, model: Any, name: str, rows: Any, **extra: Any) -> str:
    """Log MODEL as a new version of NAME the way a training script does; returns the run id."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(url)
    with mlflow.start_run() as run:
        mlflow.log_params({"C": 0.5, "max_iter": 3000})
        mlflow.log_metric("accuracy", 0.9578)
        mlflow.sklearn.log_model(model, name="model", input_example=rows, registered_model_name=name, **extra)
    return str(run.info.run_id)


@pytest.fixture(scope="module")
def cancer(mlflow_server: Mlflow) -> dict[str, Any]:
    """cancer version 1, a scikit-learn Pipeline (saved with skops, MLflow's default), @champion."""
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = _cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000)).fit(features, target)
    run_id = _log(mlflow_server.url, model, "cancer", features.head(40))
    MlflowClient(mlflow_server.url).set_registered_model_alias("cancer", "champion", "1")
    return {"model": model, "run_id": run_id, "features": features}


@pytest.fixture(scope="module")
def mlflow_user(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    """A fresh venv with ``conveyor-ml[sklearn,mlflow]`` from the wheel, as docs/interop.md installs it."""
    root = tmp_path_factory.mktemp("mlflow-user")
    venv = root / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    requirement = f"conveyor-ml[sklearn,mlflow] @ {wheel.as_uri()}"
    install = [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), requirement]
    subprocess.run([*install, "--constraint", str(REPO / "requirements.lock")], check=True, timeout=900)
    person = User(venv, root / "project", env={"CONVEYOR_HOME": str(root / "home"), "HOME": str(root)})
    person.workdir.mkdir()
    yield person
    person.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_mlflow_version_is_imported_with_its_files_and_lineage_and_served_alike(
    mlflow_user: User, mlflow_server: Mlflow, cancer: dict[str, Any]
) -> None:
    host = mlflow_server.url.removeprefix("http://")
    result = mlflow_user.ok("models", "import", f"mlflow://{host}/cancer@champion", "--alias", "production", "--json")
    assert "gate passed: 40 rows (input_example.json)" in result.stderr, result.stderr
    version = json.loads(result.stdout)
    assert (version["name"], version["version"], version["aliases"]) == ("cancer", 1, ["production"])
    assert version["lineage"]["source"] == f"mlflow://{host}/cancer/1"
    assert version["lineage"]["metrics"]["accuracy"] == pytest.approx(0.9578)
    properties = version["properties"]
    assert properties["mlflow.run_id"] == cancer["run_id"] == version["lineage"]["run_id"]
    assert (properties["mlflow.param.C"], properties["mlflow.flavor"]) == ("0.5", "sklearn")
    # MLflow's own files are kept, each with the checksum of the file in MLflow's artifact store
    stored = {p.name: p for p in mlflow_server.artifacts.rglob("*") if p.is_file()}
    kept = {f["path"].removeprefix("original/mlflow/"): f["sha256"] for f in version["files"]}
    for name in ("MLmodel", "model.skops", "input_example.json"):
        assert kept[name] == _sha256(stored[name]), name
    # the model the gate converted is MLflow's skops file as it was logged, not a pickle made from it
    originals = {f["path"]: f["sha256"] for f in version["files"] if not f["path"].startswith("original/mlflow/")}
    assert originals["original/model.skops"] == _sha256(stored["model.skops"])
    assert not [path for path in originals if path.endswith((".joblib", ".pkl"))], originals

    server = mlflow_user.serve("cancer@production")
    rows = cancer["features"].tail(60)
    answer = httpx.post(server.url + "/predict", json=rows.to_dict(orient="records"), timeout=30)
    assert answer.status_code == 200, answer.text
    expected = [str(label) for label in cancer["model"].predict(rows)]
    assert [item["label"] for item in answer.json()] == expected
    # a client written against `mlflow models serve` sends MLflow's shape to /invocations, gets MLflow's answer
    split = json.loads(rows.to_json(orient="split", index=False))
    invoked = httpx.post(server.url + "/invocations", json={"dataframe_split": split}, timeout=30)
    assert invoked.json() == {"predictions": [int(label) for label in cancer["model"].predict(rows)]}, invoked.text

    again = mlflow_user.ok(
        "models", "import", "models:/cancer/1", "--alias", "staging", env={"MLFLOW_TRACKING_URI": mlflow_server.url}
    )
    assert "unchanged: cancer:1 @production @staging" in again.stdout, again.stdout


def test_the_onnx_flavor_is_registered_as_it_is(mlflow_user: User, mlflow_server: Mlflow) -> None:
    import mlflow
    import mlflow.onnx
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    features, target = _cancer()
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features.to_numpy("float32"), target)
    proto = to_onnx(tree, features.to_numpy("float32")[:1], options={"zipmap": False})
    mlflow.set_tracking_uri(mlflow_server.url)
    with mlflow.start_run():
        mlflow.onnx.log_model(proto, name="model", registered_model_name="cancer-onnx")

    result = mlflow_user.ok("models", "import", f"{mlflow_server.url.replace('http', 'mlflow', 1)}/cancer-onnx/1")
    assert "registered cancer-onnx:1" in result.stdout, result.stdout
    shown = json.loads(mlflow_user.ok("models", "show", "cancer-onnx:1", "--json").stdout)
    files = {f["path"]: f["sha256"] for f in shown["files"]}
    assert files["model.onnx"] == hashlib.sha256(proto.SerializeToString()).hexdigest()
    assert files["original/mlflow/MLmodel"] and shown["properties"]["mlflow.flavor"] == "onnx"


@pytest.fixture(scope="module")
def plain_web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A web server on 127.0.0.1 that is not MLflow; its port."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path_factory.mktemp("plain"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1), timeout=20, what="a plain web server")
        yield port
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("mlflow://{host}/cancer/99", "cancer/99: RESOURCE_DOES_NOT_EXIST"),
        ("mlflow://{host}/nobody@champion", "nobody@champion"),
        ("mlflow://127.0.0.1:{closed}/cancer/1", "does not answer"),
        ("mlflow://127.0.0.1:{plain}/cancer/1", "answers HTTP 404 to MLflow's API: not an MLflow tracking server"),
        ("mlflow://{host}/cancer", "name a version or an alias"),
        ("models:/cancer/1", "needs the tracking server: set MLFLOW_TRACKING_URI"),
    ],
)
def test_a_bad_reference_is_one_clear_line(
    mlflow_user: User,
    mlflow_server: Mlflow,
    cancer: dict[str, Any],
    plain_web_server: int,
    reference: str,
    message: str,
) -> None:
    text = reference.format(host=mlflow_server.url.removeprefix("http://"), closed=free_port(), plain=plain_web_server)
    result = mlflow_user.run("models", "import", text, env={"MLFLOW_TRACKING_URI": ""})  # mlflow here sets it
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_watch_imports_by_mlflows_webhook_and_mlflow_shows_conveyors_verdicts(
    mlflow_user: User, mlflow_server: Mlflow, cancer: dict[str, Any]
) -> None:
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier

    (mlflow_user.workdir / "conveyor.yaml").write_text(
        "pipelines:\n"
        "  deliver:\n"
        "    params: {model: {default: cancer@production}}\n"
        "    triggers:\n"
        "      - mlflow: {model: cancer, every: 1h, aliases: [candidate],\n"
        "                 mlflow_aliases: {production: conveyor-production}}\n"
        "    steps:\n"
        "      show: {run: 'conveyor models show ${{ params.model }} --json > shown.json'}\n"
    )
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    watch = mlflow_user.spawn("pipeline", "watch", "--once", env=env, name="watch")
    wait_for(lambda: "cancer: at version" in watch.log(), timeout=60, what="the watch's first look at MLflow")
    assert f"MLflow at {mlflow_server.url} calls http://127.0.0.1:" in watch.log(), watch.log()
    client = MlflowClient(mlflow_server.url)
    assert [h.url for h in client.list_webhooks()] == [f"{watch.log().split(' calls ')[1].split()[0]}"]

    features, target = _cancer()
    forest = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(features, target)
    run_id = _log(mlflow_server.url, forest, "cancer", features.head(50), serialization_format="cloudpickle")

    assert watch.process.wait(timeout=240) == 0, watch.log()  # polled every hour: MLflow's webhook told it
    assert "event mlflow cancer:" in watch.log(), watch.log()
    assert list(client.list_webhooks()) == [], "the watch removes its webhook from MLflow when it stops"
    shown = json.loads((mlflow_user.workdir / "shown.json").read_text())
    assert shown["properties"]["mlflow.run_id"] == run_id
    assert shown["properties"]["mlflow.version"] == "2" and "candidate" in shown["aliases"]

    # verified and promoted in Conveyor: MLflow's version 2 shows both, and its alias follows production
    imported = f"cancer:{shown['version']}"
    mlflow_user.ok("verify", imported, "--record", "--skip", "lint.*")  # the project has no code to lint
    mlflow_user.ok("models", "alias", "set", "cancer@production", str(shown["version"]))
    tags = client.get_model_version("cancer", "2").tags
    assert tags["conveyor.version"] == imported
    assert tags["conveyor.verify"] == "passed" and tags["conveyor.verify.checks"].split("/")[0] != "0"
    assert tags["conveyor.alias.production"] == tags["conveyor.alias.candidate"] == imported
    assert client.get_model_version_by_alias("cancer", "conveyor-production").version == "2"


def test_a_watch_that_was_down_imports_every_version_logged_meanwhile(
    mlflow_user: User, mlflow_server: Mlflow, cancer: dict[str, Any]
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    features, target = _cancer()
    logged = []
    for depth in (2, 3):  # while no watch runs (cloudpickle: MLflow's skops does not trust a tree's nodes)
        tree = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(features, target)
        logged.append(_log(mlflow_server.url, tree, "cancer", features.head(30), serialization_format="cloudpickle"))
    watch = mlflow_user.spawn(
        "pipeline", "watch", "--once", env={"MLFLOW_TRACKING_URI": mlflow_server.url}, name="restarted"
    )
    assert watch.process.wait(timeout=240) == 0, watch.log()
    imported = {}
    for version in json.loads(mlflow_user.ok("models", "show", "cancer", "--json").stdout)["versions"]:
        imported[version["properties"].get("mlflow.version")] = version
    assert [imported[v]["lineage"]["run_id"] for v in ("3", "4")] == logged, watch.log()


def test_mlflows_own_webhook_signature_is_accepted_and_a_forged_or_stale_one_refused() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    from conveyor.pipeline.mlflow_watch import mlflow_signed

    body = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "cancer", "version": "4"}})
    now, old = str(int(time.time())), str(int(time.time()) - 3600)
    signed = {"X-MLflow-Delivery-Id": "d1", "X-MLflow-Timestamp": now,
              "X-MLflow-Signature": _generate_hmac_signature("s3cret", "d1", now, body)}  # fmt: skip
    assert mlflow_signed("s3cret", body.encode(), signed) == "cancer"
    assert mlflow_signed("other", body.encode(), signed) is None
    assert mlflow_signed("s3cret", body.replace("cancer", "cancer2").encode(), signed) is None
    stale = {
        **signed,
        "X-MLflow-Timestamp": old,
        "X-MLflow-Signature": _generate_hmac_signature("s3cret", "d1", old, body),
    }
    assert mlflow_signed("s3cret", body.encode(), stale) is None


def test_a_pyfunc_model_is_refused_with_the_way_to_log_it(mlflow_server: Mlflow, tmp_path: Path) -> None:
    import mlflow
    import mlflow.pyfunc

    from conveyor.errors import InvalidInput
    from conveyor.interop.mlflow_import import fetch
    from conveyor.interop.mlflow_ref import MlflowRef

    class Doubles(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input * 2

    mlflow.set_tracking_uri(mlflow_server.url)
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=Doubles(), registered_model_name="doubles")
    with pytest.raises(InvalidInput) as refused:
        fetch(MlflowRef(mlflow_server.url, "doubles", version="1"), tmp_path / "artifacts")
    assert "is a pyfunc model" in str(refused.value) and "mlflow.onnx.log_model" in str(refused.value)


def test_the_pytorch_flavor_is_captured_at_its_signatures_shape_and_gated(
    mlflow_server: Mlflow, tmp_path: Path
) -> None:
    """PyTorch is not in this journey's venv: the developer's environment (it has torch) imports it."""
    import mlflow
    import mlflow.pytorch
    import numpy as np
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.head = torch.nn.Linear(4 * 6 * 6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.conv(x)).flatten(1))

    torch.manual_seed(0)
    mlflow.set_tracking_uri(mlflow_server.url)
    with mlflow.start_run():
        example = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
        mlflow.pytorch.log_model(Tiny().eval(), name="model", input_example=example, registered_model_name="tiny")
    conveyor = Path(sys.executable).parent / "conveyor"
    result = subprocess.run(
        [str(conveyor), "models", "import", "models:/tiny/1", "--labels", "a,b,c", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "CONVEYOR_REGISTRY": str(tmp_path / "registry"), "MLFLOW_TRACKING_URI": mlflow_server.url},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "image-classification, 1x8x8 images, 3 labels; gate passed" in result.stderr, result.stderr
    version = json.loads(result.stdout)
    assert version["framework"] == "pytorch" and version["properties"]["mlflow.flavor"] == "pytorch"


def test_watch_follows_an_mlflow_alias_when_it_moves(
    mlflow_user: User, mlflow_server: Mlflow, cancer: dict[str, Any], tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from sklearn.tree import DecisionTreeClassifier

    features, target = _cancer()
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, target)
    _log(mlflow_server.url, tree, "cancer", features.head(30), serialization_format="cloudpickle")
    client = MlflowClient(mlflow_server.url)
    newest = max(int(v.version) for v in client.search_model_versions("name = 'cancer'"))
    client.set_registered_model_alias("cancer", "champion", "1")

    project = tmp_path / "follows-alias"
    project.mkdir()
    (project / "conveyor.yaml").write_text(
        "pipelines:\n"
        "  promote:\n"
        "    params: {model: {default: cancer@production}}\n"
        "    triggers:\n"
        f"      - mlflow: {{model: cancer, alias: champion, tracking_uri: '{mlflow_server.url}', every: 1s}}\n"
        "    steps:\n"
        "      show: {run: 'conveyor models show ${{ params.model }} --json > shown.json'}\n"
    )
    watch = mlflow_user.spawn("pipeline", "watch", "--once", "--file", str(project / "conveyor.yaml"), name="alias")
    wait_for(lambda: "cancer@champion: at version 1" in watch.log(), timeout=60, what="the watch's first look")
    client.set_registered_model_alias("cancer", "champion", str(newest))

    assert watch.process.wait(timeout=240) == 0, watch.log()
    shown = json.loads((project / "shown.json").read_text())
    assert shown["properties"]["mlflow.version"] == str(newest), watch.log()


def test_a_refused_credential_is_one_line_naming_it_not_a_server_that_is_not_mlflow(tmp_path: Path) -> None:
    """A server answering 401 as MLflow's basic-auth app does (plain text), read by MLflow's own client."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from conveyor.errors import Unauthorized
    from conveyor.interop.mlflow_import import latest_version
    from conveyor.interop.mlflow_ref import MlflowRef

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.end_headers()
            self.wfile.write(b"You are not authenticated. Please see the documentation on how to authenticate.")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Refusing)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(Unauthorized) as refused:
            latest_version(MlflowRef(f"http://127.0.0.1:{server.server_port}", "cancer"))
    finally:
        server.shutdown()
    message = str(refused.value)
    assert "HTTP 401" in message and "MLFLOW_TRACKING_TOKEN" in message and "not an MLflow" not in message
    assert "\n" not in message
