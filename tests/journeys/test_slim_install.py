"""Journey: ``pip install conveyor-ml``, the wheel alone, into a fresh virtual environment.

The core install is what ``conveyor serve``, the registry and the CLI need (docs/install.md): it
stays under 220 MiB, registers and serves an ONNX text model and a tabular model (converted by
a scikit-learn user's full environment into the registry the slim one reads), and every feature
beyond it (monitor, router, dashboard, keys, builds, optimize, S3, PostgreSQL, tracing, images)
answers one error line naming its extra and the exact pip command, exit 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import models
from tests.conftest import REPO, free_port
from tests.journeys.conftest import UV, User, copy_model

MAX_MIB = 220
# distributions of the extras that `pip install conveyor-ml` must not bring
NOT_CORE = {"scipy", "onnx", "sympy", "boto3", "botocore", "pillow", "ruff", "psycopg", "aiohttp", "jinja2", "pip"}
NOT_CORE |= {"model-signing", "cryptography", "cyclonedx-python-lib", "opentelemetry-sdk", "python-multipart"}


@pytest.fixture(scope="module")
def slim_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("slim") / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python, lock = str(venv / "bin" / "python"), str(REPO / "requirements.lock")
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", python, str(wheel), "--constraint", lock],
        check=True,
        timeout=600,
    )
    return venv


@pytest.fixture
def slim(slim_venv: Path, tmp_path: Path) -> Iterator[User]:
    workdir = tmp_path / "project"
    workdir.mkdir()
    person = User(slim_venv, workdir, env={"CONVEYOR_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)})
    yield person
    person.close()


def _installed(venv: Path) -> set[str]:
    listing = subprocess.run(
        [str(UV), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {entry["name"].lower() for entry in json.loads(listing.stdout)}


def test_the_wheel_alone_installs_the_core_in_under_220_mib(slim_venv: Path) -> None:
    size = sum(p.stat().st_size for p in slim_venv.rglob("*") if p.is_file() and not p.is_symlink())
    assert size <= MAX_MIB * 2**20, f"{size / 2**20:.0f} MiB"
    installed = _installed(slim_venv)
    assert {"conveyor-ml", "onnxruntime", "tokenizers", "uvicorn", "uvloop", "sqlalchemy", "httpx"} <= installed
    assert installed & NOT_CORE == set()


def test_a_registered_onnx_model_and_a_tabular_model_serve(slim: User, vote_folder: Path, tabular) -> None:  # type: ignore[no-untyped-def]
    import joblib
    import pandas as pd

    slim.ok("models", "register", str(copy_model(vote_folder, slim.workdir / "votes")), "--name", "votes")
    # the tabular model is converted where scikit-learn is (the full environment), into the same registry
    register = ["models", "register", str(tabular.risk), "--name", "risk", "--sample", str(tabular.risk_sample)]
    converted = subprocess.run(
        [sys.executable, "-m", "conveyor", *register],
        capture_output=True,
        text=True,
        env={**os.environ, "CONVEYOR_HOME": slim.env["CONVEYOR_HOME"]},
        timeout=300,
    )
    assert converted.returncode == 0, converted.stderr
    texts = ["good good film", "bad plot, bad acting", "good"]
    server = slim.serve("votes:1")
    answer = httpx.post(server.url + "/predict", json=texts, timeout=30)
    assert answer.status_code == 200 and answer.json() == [{"positive": models.expected_positive(t)} for t in texts]
    server.stop()
    rows = pd.read_csv(tabular.risk_sample).head(5)
    server = slim.serve("risk:1")
    answer = httpx.post(server.url + "/predict", content=rows.to_json(orient="records"), timeout=30)
    assert answer.status_code == 200, answer.text
    assert [a["label"] for a in answer.json()] == list(joblib.load(tabular.risk).predict(rows))


def _image_model(folder: Path) -> Path:
    """A tiny image-classification model (2x2 grayscale pixels, two labels)."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir()
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], [1, 0, 0, 1, 1, 0, 0, 1])
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["pixels"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 1, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    spec = {"name": "tiny", "task": "image-classification", "tokenizer_file": None, "labels": ["dark", "light"]}
    spec["image"] = {"width": 2, "height": 2, "channels": 1}
    (folder / "model.yaml").write_text(json.dumps(spec))
    return folder


EXTRAS = {
    "monitor": (["monitor", "votes:1", "--logs", "payloads", "--html", "report.html"], {}),
    "router": (["router", "--service", "votes", "--port", "{port}", "--stable", "http://127.0.0.1:9"], {}),
    "ui": (["ui", "--port", "{port}"], {}),
    "supply-chain": (["keys", "generate", "team"], {}),
    "build": (["package", "votes:1", "-o", "ctx"], {}),
    "optimize": (["models", "optimize", "votes:1", "--eval", "texts.txt"], {}),
    "postgres": (["registry", "serve", "--database", "postgresql://u@127.0.0.1:9/registry", "--port", "{port}"], {}),
    "s3": (["serve", "votes:1", "--port", "{port}", "--log-payloads", "s3://bucket/payloads"], {}),
    "tracing": (["serve", "votes:1", "--port", "{port}"], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}),
    "images": (["serve", "tiny:1", "--port", "{port}"], {}),
}


def test_every_other_feature_names_its_extra_in_one_line(slim: User, vote_folder: Path) -> None:
    slim.ok("models", "register", str(copy_model(vote_folder, slim.workdir / "votes")), "--name", "votes")
    slim.ok("models", "register", str(_image_model(slim.workdir / "tiny")), "--name", "tiny")
    (slim.workdir / "texts.txt").write_text("good film\nbad film\n")
    for extra, (args, env) in EXTRAS.items():
        result = slim.run(*[a.replace("{port}", str(free_port())) for a in args], env=env, timeout=120)
        command = f"pip install 'conveyor-ml[{extra}]'"
        said = result.stderr.strip()
        errors = [line for line in said.splitlines() if line.startswith("error: ")]
        assert result.returncode == 2, (extra, result.stdout, said)
        assert said.endswith(command) and len(errors) == 1 and "Traceback" not in said, (extra, said)
