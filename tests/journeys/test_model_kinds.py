"""Journey: every kind of model a team has, from the installed wheel with its ``[frameworks,all]`` extras.

A scikit-learn Pipeline, an XGBoost and a LightGBM classifier in their native files, a PyTorch
CNN (torch.export) and a Hugging Face folder go the same way: ``conveyor models register`` (the
conversion gate), ``conveyor serve`` and curl, ``conveyor verify`` with no contract file,
``conveyor init --task`` recording a contract that ``verify`` then holds, ``conveyor build``
(podman; the image carries onnxruntime, never the training framework) and a canary through
``conveyor router``, whose agreement analysis compares labels for a classifier and values
within a tolerance for a regressor.

The models are trained in the test process (the developer's environment: what the user brings);
everything else runs in the user's.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port
from tests.deep_models import Built, digit_png
from tests.docs_blocks import shell_block
from tests.journeys.conftest import UV, User, wait_http
from tests.machine import tool
from tests.rollout_fixtures import Load
from tests.tabular_models import Trained, risk_frame
from tests.test_packaging import base_image, podman  # noqa: F401 (base_image: a fixture)
from tests.waiting import wait_for

DIGITS = "zero,one,two,three,four,five,six,seven,eight,nine"
TORCH_WHEELS = (
    "/opt/wheels" if list(Path("/opt/wheels").glob("torch-*")) else "https://download.pytorch.org/whl/cpu/torch/"
)
FRAMEWORK_MODULES = ("sklearn", "xgboost", "lightgbm", "torch", "transformers", "skl2onnx", "onnxmltools")


# each worker that runs one of these registers every kind first (the module's fixture): minutes on a loaded
# machine before the test itself starts
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def frameworks_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``conveyor-ml[frameworks,all]`` from the wheel, as the docs tell a user to install it."""
    venv = tmp_path_factory.mktemp("user-frameworks") / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    requirement = f"conveyor-ml[frameworks,all] @ {wheel.as_uri()}"  # [all]: builds, routers, image decoding
    install = [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), requirement]
    install += ["--constraint", str(REPO / "requirements.lock"), "--find-links", TORCH_WHEELS]
    subprocess.run(install, check=True, timeout=900)
    return venv


@dataclass(frozen=True)
class Kind:
    name: str  # the registered model's name
    register: list[str]  # what follows `conveyor models register`
    framework: str


def _kinds(tabular: Trained, deep: Built) -> dict[str, Kind]:
    return {
        "scikit-learn": Kind("risk", [str(tabular.risk), "--sample", str(tabular.risk_sample)], "scikit-learn"),
        "xgboost": Kind("cancer-xgb", [str(tabular.cancer_xgb), "--sample", str(tabular.cancer_sample)], "xgboost"),
        "lightgbm": Kind("cancer-lgb", [str(tabular.cancer_lgb), "--sample", str(tabular.cancer_sample)], "lightgbm"),
        "pytorch": Kind("digits", [str(deep.digits_export), "--labels", DIGITS], "pytorch"),
        "huggingface": Kind("sentiment-hf", [str(deep.sentiment_hf)], "transformers"),
    }


@dataclass
class Registered:
    user: User
    kinds: dict[str, Kind]
    tabular: Trained
    deep: Built


@pytest.fixture(scope="module")
def registered(
    frameworks_venv: Path, tabular: Trained, deep: Built, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
    """Each kind registered as version 1 by one user; each registration passed its gate."""
    root = tmp_path_factory.mktemp("kinds-journey")
    person = User(frameworks_venv, root / "project", env={"CONVEYOR_HOME": str(root / "home"), "HOME": str(root)})
    person.workdir.mkdir()
    kinds = _kinds(tabular, deep)
    for kind in kinds.values():
        result = person.ok("models", "register", *kind.register, "--name", kind.name, "--json")
        assert "gate passed" in result.stderr, result.stderr
        version = json.loads(result.stdout)
        assert version["version"] == 1 and version["framework"] == kind.framework
        assert any(f["path"].startswith("original/") for f in version["files"])
    yield Registered(person, kinds, tabular, deep)
    person.close()


def _curl(url: str, body: bytes, content_type: str) -> tuple[int, object]:
    result = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", f"Content-Type: {content_type}", "--data-binary", "@-", url],
        input=body,
        capture_output=True,
        timeout=60,
    )
    text, _, status = result.stdout.decode().rpartition("\n")
    return int(status), json.loads(text)


def _first_rows(sample: Path, count: int) -> list[dict[str, object]]:
    import pandas as pd

    return json.loads(pd.read_csv(sample).head(count).to_json(orient="records"))


def _expected(kind: str, reg: Registered, count: int) -> list[object]:
    """What the original model answers for the first ``count`` inputs (the framework, in this process)."""
    import pandas as pd

    if kind == "scikit-learn":
        import joblib

        return list(joblib.load(reg.tabular.risk).predict(pd.read_csv(reg.tabular.risk_sample).head(count)))
    if kind in ("xgboost", "lightgbm"):
        rows = pd.read_csv(reg.tabular.cancer_sample).head(count)
        if kind == "xgboost":
            import xgboost

            booster = xgboost.Booster(model_file=str(reg.tabular.cancer_xgb))
            positive = booster.predict(xgboost.DMatrix(rows))
        else:
            import lightgbm

            positive = lightgbm.Booster(model_file=str(reg.tabular.cancer_lgb)).predict(rows)
        return [str(int(p > 0.5)) for p in positive]
    if kind == "pytorch":
        import torch

        from tests.deep_models import digits

        program = torch.export.load(str(reg.deep.digits_export)).module()
        with torch.no_grad():
            scores = program(torch.from_numpy(digits()[0][:count]))
        return [DIGITS.split(",")[i] for i in scores.argmax(1).tolist()]
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(reg.deep.sentiment_hf)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(reg.deep.sentiment_hf))
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS[:count], padding=True, return_tensors="pt")).logits
    return [bool(i == 1) for i in logits.argmax(1).tolist()]


TEXTS = ["a wonderful film", "the plot was dull and slow", "fine"]


def _request(kind: str, reg: Registered, count: int) -> tuple[bytes, str]:
    if kind == "scikit-learn":
        return json.dumps(_first_rows(reg.tabular.risk_sample, count)).encode(), "application/json"
    if kind in ("xgboost", "lightgbm"):
        return json.dumps(_first_rows(reg.tabular.cancer_sample, count)).encode(), "application/json"
    if kind == "pytorch":
        return json.dumps([base64.b64encode(digit_png(i)).decode() for i in range(count)]).encode(), "application/json"
    return json.dumps(TEXTS[:count]).encode(), "application/json"


def _answered(kind: str, answer: list[dict[str, object]]) -> list[object]:
    return [a["positive"] if kind == "huggingface" else a["label"] for a in answer]


@pytest.mark.parametrize("kind", ["scikit-learn", "xgboost", "lightgbm", "pytorch", "huggingface"])
def test_each_kind_is_served_as_its_framework_answers_and_passes_verify(registered: Registered, kind: str) -> None:
    person, name = registered.user, registered.kinds[kind].name
    server = person.serve(f"{name}:1")
    try:
        body, content_type = _request(kind, registered, 3)
        status, answer = _curl(server.url + "/predict", body, content_type)
        assert status == 200, answer
        assert _answered(kind, answer) == _expected(kind, registered, 3)  # type: ignore[arg-type]
        if kind == "pytorch":  # the PNG bytes themselves, as a camera or a browser uploads them
            status, single = _curl(server.url + "/predict", digit_png(0), "image/png")
            assert status == 200 and single["label"] == _expected(kind, registered, 1)[0]  # type: ignore[index]
    finally:
        server.stop()
    report = person.run("verify", f"{name}:1", "--json")
    checks = json.loads(report.stdout)["checks"]
    assert report.returncode == 0, [(c["id"], c["message"]) for c in checks if c["status"] != "passed"]
    ran = {c["id"] for c in checks if c["status"] == "passed"}
    assert {"predict.answers", "predict.batch_consistent", "v2.infer", "model.digest"} <= ran and any(
        i.startswith("errors.") for i in ran
    )


@pytest.mark.parametrize("kind", ["scikit-learn", "pytorch"])
def test_init_records_the_tasks_contract_and_verify_holds_it(registered: Registered, kind: str, tmp_path: Path) -> None:
    person, name = registered.user, registered.kinds[kind].name
    task = {"scikit-learn": "tabular-classification", "pytorch": "image-classification"}[kind]
    if kind == "scikit-learn":
        sample = tmp_path / "golden.csv"
        sample.write_text("\n".join(registered.tabular.risk_sample.read_text().splitlines()[:4]) + "\n")
    else:
        sample = tmp_path / "digits"
        sample.mkdir()
        for i in range(3):
            (sample / f"digit-{i}.png").write_bytes(digit_png(i))
    project = person.workdir / f"{name}-delivery"
    wrong = person.run("init", str(project), "--name", name, "--task", "tabular-regression")
    assert wrong.returncode != 0 and f"is a {task} model" in wrong.stderr and not project.exists()
    person.ok("init", str(project), "--name", name, "--task", task, "--sample", str(sample))
    import yaml

    contract = yaml.safe_load((project / "contract.yaml").read_text())
    expected = _expected(kind, registered, 3)
    assert [g["exact"] for g in contract["golden"]] == expected and all(
        g["field"] == "label" for g in contract["golden"]
    )
    labels = {"scikit-learn": ["high", "low"], "pytorch": DIGITS.split(",")}[kind]
    assert contract["response_schema"]["properties"]["label"]["enum"] == labels
    assert {"errors.malformed-json", "errors.wrong-content-type"} <= {
        f"errors.{c['name']}" for c in contract["invalid"]
    }
    report = person.run("verify", f"{name}:1", "--contract", str(project / "contract.yaml"), "--json")
    checks = json.loads(report.stdout)["checks"]
    assert report.returncode == 0, [(c["id"], c["message"]) for c in checks if c["status"] != "passed"]
    assert sum(c["id"].startswith("golden.") and c["status"] == "passed" for c in checks) == 3


@podman
@pytest.mark.slow(seconds=220)
def test_each_kinds_image_carries_onnxruntime_and_no_training_framework(
    registered: Registered,
    base_image: str,  # noqa: F811
    shared_wheelhouse: Path,
) -> None:
    person = registered.user
    wheelhouse = {"CONVEYOR_WHEELHOUSE": str(shared_wheelhouse)}  # the run's downloaded wheels, as one machine has
    probe = f"import importlib.util as u; print([m for m in {FRAMEWORK_MODULES!r} if u.find_spec(m)])"
    for kind in registered.kinds.values():
        tag = f"localhost/journey-{kind.name}:1"
        built = person.ok("build", f"{kind.name}:1", "--tag", tag, "--base-image", base_image, "--json", env=wheelhouse)
        assert json.loads(built.stdout)["size_bytes"] > 0
        try:
            inside = subprocess.run(
                ["podman", "run", "--rm", "--entrypoint", "python", tag, "-c", probe + "; import onnxruntime"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert inside.returncode == 0 and inside.stdout.strip() == "[]", inside.stdout + inside.stderr
            report = person.run("verify", tag, "--image", "--skip", "lint.*", "--json")
            checks = json.loads(report.stdout)["checks"]
            assert report.returncode == 0, [(c["id"], c["message"]) for c in checks if c["status"] != "passed"]
        finally:
            subprocess.run(["podman", "rmi", tag], capture_output=True, timeout=120)


def test_the_kubernetes_export_runs_under_podman_kube_play(
    registered: Registered,
    base_image: str,  # noqa: F811
    shared_wheelhouse: Path,
) -> None:
    """The plain Deployment and Service, the image by digest, run for real by `podman kube play`."""
    tool("catatonit")  # podman kube play's pause process
    person = registered.user
    tag = "localhost/journey-kube-risk:1"
    person.ok(
        "build", "risk:1", "--tag", tag, "--base-image", base_image, env={"CONVEYOR_WHEELHOUSE": str(shared_wheelhouse)}
    )
    port = free_port()
    manifest = person.workdir / "risk-kube.yaml"
    try:
        digest = subprocess.run(["podman", "image", "inspect", tag, "--format", "{{.Digest}}"],
                                capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        person.ok("rollout", "export", "--format", "kubernetes", "--name", "risk-kube", "--image",
                  f"localhost/journey-kube-risk@{digest}", "--host-port", str(port), "-o", str(manifest))  # fmt: skip
        played = subprocess.run(["podman", "kube", "play", str(manifest)], capture_output=True, text=True, timeout=120)
        assert played.returncode == 0, played.stdout + played.stderr
        pods = subprocess.run(["podman", "pod", "ps", "--format", "{{.Name}}"], capture_output=True, text=True)
        assert "risk-kube-pod-0" in pods.stdout.split()
        url = f"http://127.0.0.1:{port}"
        # the readiness probe's request, through the published port (podman here runs no probes: no systemd)
        wait_for(lambda: httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200, timeout=90,
                 what="the kube play pod to be ready")  # fmt: skip
        body, content_type = _request("scikit-learn", registered, 3)
        status, answer = _curl(url + "/predict", body, content_type)
        assert status == 200 and _answered("scikit-learn", answer) == _expected("scikit-learn", registered, 3)  # type: ignore[arg-type]
    finally:
        down = subprocess.run(["podman", "kube", "down", str(manifest)], capture_output=True, text=True, timeout=120)
        subprocess.run(["podman", "rmi", tag], capture_output=True, timeout=120)
    assert down.returncode == 0, down.stderr
    left = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True)
    assert not [name for name in left.stdout.split() if name.startswith("risk-kube")]


FAST = ["--steps", "50,100", "--interval", "2s", "--min-requests", "10", "--min-compared", "5"]
FAST += ["--p99-floor-ms", "2000"]


def _status(person: User, service: str) -> dict:  # type: ignore[type-arg]
    return json.loads((Path(person.env["CONVEYOR_HOME"]) / "rollouts" / service / "status.json").read_text())


def _agreements(status: dict) -> list[float]:
    """The agreement of every window that compared enough mirrored answers (at least one must have).

    A window with too few comparisons (a busy machine slows the mirror) is inconclusive and has none.
    """
    judged = [a["measurements"]["agreement"] for a in status["analysis"] if "agreement" in a["measurements"]]
    assert judged, status["analysis"]
    return judged


def test_canaries_compare_a_classifiers_labels_and_a_regressors_values_within_a_tolerance(
    registered: Registered, tmp_path: Path
) -> None:
    import joblib
    import pandas as pd
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    person, tabular = registered.user, registered.tabular
    frame, labels = risk_frame()
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["age", "bmi", "bp"]), ("cat", OneHotEncoder(), ["sex", "region"])]
    )
    retrained = Pipeline([("prep", prep), ("clf", LogisticRegression(C=0.3, max_iter=500))]).fit(frame, labels)
    joblib.dump(retrained, tmp_path / "risk-2.joblib")
    person.ok(
        "models", "register", str(tmp_path / "risk-2.joblib"), "--name", "risk", "--sample", str(tabular.risk_sample)
    )
    cancer = pd.read_csv(tabular.cancer_sample)
    features, target = cancer.drop(columns=["mean area"]), cancer["mean area"]
    shuffled = target.sample(frac=1, random_state=0).values  # a broken retraining: features and target apart
    regressors = {
        1: xgboost.XGBRegressor(n_estimators=25).fit(features, target),
        2: xgboost.XGBRegressor(n_estimators=25).fit(features, shuffled),
        3: xgboost.XGBRegressor(n_estimators=40, learning_rate=0.25).fit(features, target),  # within 2.4% of 1
    }
    for version, regressor in regressors.items():
        joblib.dump(regressor, tmp_path / f"area-{version}.joblib")
    for version in (1, 2, 3):
        person.ok("models", "register", str(tmp_path / f"area-{version}.joblib"), "--name", "area")

    def router(service: str):  # type: ignore[no-untyped-def]
        port = free_port()
        spawned = person.spawn("router", "--service", service, "--port", str(port), "--health-interval", "0.2")
        spawned.url = f"http://127.0.0.1:{port}"
        wait_http(spawned, "/_conveyor/health")
        return spawned

    risk_router, area_router = router("risk"), router("area")
    try:
        person.ok("rollout", "start", "risk:1", "--service", "risk", "--router", risk_router.url)
        with Load(risk_router.url, rows=json.loads(frame.head(60).to_json(orient="records"))) as load:
            result = person.run("rollout", "start", "risk:2", "--service", "risk", "--router", risk_router.url, *FAST)
        assert result.returncode == 0, result.stdout + result.stderr
        status = _status(person, "risk")
        assert status["phase"] == "succeeded" and load.errors == 0 and load.wrong == 0, load.seen
        assert all(a >= 0.9 for a in _agreements(status)), status["analysis"]  # the labels, not the probabilities

        person.ok("rollout", "start", "area:1", "--service", "area", "--router", area_router.url)
        rows = json.loads(features.head(60).to_json(orient="records"))
        with Load(area_router.url, rows=rows):
            broken = person.run("rollout", "start", "area:2", "--service", "area", "--router", area_router.url, *FAST)
        assert broken.returncode != 0
        status = _status(person, "area")
        aborting = status["analysis"][-1]  # the window that stopped it: the values disagree
        assert status["phase"] == "aborted" and aborting["measurements"].get("agreement", 1.0) < 0.5, aborting
        assert "agree with stable" in " ".join(aborting["reasons"])
        with Load(area_router.url, rows=rows):
            result = person.run("rollout", "start", "area:3", "--service", "area", "--router", area_router.url, *FAST,
                                "--max-value-shift", "0.3")  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        status = _status(person, "area")
        assert status["phase"] == "succeeded" and all(a == 1.0 for a in _agreements(status)), status["analysis"]
        canary_windows = [a["measurements"] for a in status["analysis"] if "value_shift" in a["measurements"]]
        assert canary_windows and all(m["value_shift"] <= 0.3 for m in canary_windows), status["analysis"]
    finally:
        for service in ("risk", "area"):
            person.run("rollout", "down", service)


def test_the_documented_tabular_commands_run_as_written(
    frameworks_venv: Path, tabular: Trained, tmp_path: Path
) -> None:
    """docs/models.md's register, serve and curl blocks, pasted into a user's folder holding the two files."""
    person = User(frameworks_venv, tmp_path / "project", env={"CONVEYOR_HOME": str(tmp_path / "home")})
    person.workdir.mkdir()
    shutil.copy(tabular.risk, person.workdir / "risk.joblib")
    shutil.copy(tabular.risk_sample, person.workdir / "rows.csv")
    (register,) = shell_block("docs/models.md", "conveyor models register risk.joblib")
    registered = person.ok(*shlex.split(register)[1:])
    assert "gate passed" in registered.stderr and "registered risk:1" in registered.stdout, registered.stderr
    serve, curl = shell_block("docs/models.md", "conveyor serve risk:1")
    server = person.serve(*shlex.split(serve)[2:])  # on a free port: the one change to the pasted lines
    try:
        answered = subprocess.run(
            ["bash", "-c", curl.replace("http://127.0.0.1:5000", server.url)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    documented = json.loads(re.search(r'^# (\{"high".*\})$', (REPO / "docs/models.md").read_text(), re.M)[1])
    answer = json.loads(answered.stdout)
    assert answer.keys() == documented.keys() and answer["probabilities"].keys() == documented["probabilities"].keys()
    assert answer["high"] is (answer["label"] == "high")
    person.close()
