"""Inputs bounded everywhere (issue 44): version numbers, file names, ONNX external data, v2 input names.

Each bound is a 4xx (or one CLI line) naming the rule, at every entry: references, URL paths and
bodies of the registry server, the local register path, intake, the v2 endpoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from starlette.testclient import TestClient

from conveyor.errors import InvalidInput
from conveyor.registry.config import open_local
from conveyor.registry.local import LocalRegistry
from conveyor.registry.refs import MAX_VERSION, parse_ref, safe_file_name
from conveyor.registry.server import create_registry_app
from conveyor.serving.intake import check_servable
from tests.conftest import Server
from tests.registry_fixtures import run_cli

RULE = f"versions are whole numbers from 1 to {MAX_VERSION}"


@pytest.mark.parametrize("text", ["m:0", f"m:{MAX_VERSION + 1}", "m:99999999999999999999999", "m:²", "m:-1"])
def test_a_reference_takes_versions_from_1_to_2_63_minus_1(text: str) -> None:
    with pytest.raises(InvalidInput, match=RULE):
        parse_ref(text)
    assert parse_ref(f"m:{MAX_VERSION}").version == MAX_VERSION


@pytest.fixture
def registry(conveyor_home: Path, tmp_path: Path) -> LocalRegistry:
    registry = open_local()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("a")
    registry.register(tmp_path / "m", "m")
    return registry


def test_the_registry_server_answers_4xx_never_500_at_its_bounds(registry: LocalRegistry) -> None:
    big = MAX_VERSION + 1
    with TestClient(create_registry_app(registry, require_auth=False)) as http:
        answers = {
            "get": http.get(f"/api/v1/models/m/versions/{big}"),
            "delete": http.delete(f"/api/v1/models/m/versions/{big}"),
            "archive": http.post(f"/api/v1/models/m/versions/{big}/archive"),
            "tags": http.patch(f"/api/v1/models/m/versions/{big}/tags", json={"set": {"k": "v"}}),
            "resolve": http.get("/api/v1/resolve", params={"ref": f"m:{big}"}),
            "alias": http.put("/api/v1/models/m/aliases/prod", json={"version": big}),
        }
        for what, answer in answers.items():
            assert answer.status_code == 422 and RULE in answer.json()["error"], (what, answer.text)
        assert http.get(f"/api/v1/models/m/versions/{MAX_VERSION}").status_code == 404  # in range, not there
        digest = hashlib.sha256(b"w").hexdigest()
        assert http.put(f"/api/v1/blobs/{digest}", content=b"w").status_code == 201
        for path in (".hidden", "a b", "x" * 5000, "dir/.git", "mod\u00e8le.onnx"):
            files = [{"path": path, "sha256": digest, "size": 1}]
            answer = http.post("/api/v1/models/m/versions", json={"files": files})
            assert answer.status_code == 422, (path, answer.text)
            assert "invalid file path" in answer.json()["error"] and "none starting with '.'" in answer.json()["error"]
            assert len(answer.json()["error"]) < 400  # a 5000-character name is not echoed whole
    assert [v.version for v in registry.list_versions("m")] == [1]


def test_the_cli_says_an_out_of_range_version_in_one_line(registry: LocalRegistry) -> None:
    result = run_cli("models", "show", f"m:{MAX_VERSION + 1}")
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: invalid version '{MAX_VERSION + 1}' in 'm:{MAX_VERSION + 1}': {RULE}"
    ]


@pytest.mark.parametrize("name", ["a b.txt", "caf\u00e9.txt"])
def test_local_registration_refuses_file_names_the_server_refuses(
    registry: LocalRegistry, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "named"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    (folder / name).write_text("refused")
    with pytest.raises(InvalidInput, match="invalid file path") as caught:
        registry.register(folder, "named")
    assert repr(name) in str(caught.value) and "letters, digits" in str(caught.value)
    assert "named" not in {m.name for m in registry.list_models()}


def test_a_file_name_this_filesystem_cannot_hold_fails_its_download_in_one_line(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """A version registered before the bound (straight into the store) with a 300-character name."""
    from conveyor.errors import ConveyorError
    from conveyor.registry.base import version_digest
    from conveyor.registry.records import FileEntry, NewVersion

    digest = hashlib.sha256(b"w").hexdigest()
    registry.blobs.put(digest, [b"w"])
    files = [FileEntry(path="x" * 300, sha256=digest, size=1)]
    old = registry.store.create_version("m", NewVersion(files=files), version_digest(files))
    with pytest.raises(ConveyorError, match=r"cannot write 'x{60}\.\.\. \(300 characters\)' under .*nothing was"):
        registry.download(old.ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _model_with_external_weights(folder: Path, location: str) -> Path:
    """A MatMul whose weight W is kept in ``weights.bin``, then its recorded location set to ``location``."""
    folder.mkdir()
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, folder / "model.onnx", save_as_external_data=True, location="weights.bin", size_threshold=0)
    saved = onnx.load(folder / "model.onnx", load_external_data=False)
    for entry in saved.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(saved, folder / "model.onnx")
    return folder


@pytest.mark.parametrize(
    ("location", "refusal"),
    [
        ("../outside.bin", "outside the model's folder"),
        ("/etc/passwd", "outside the model's folder"),
        ("sub/../../weights.bin", "outside the model's folder"),
        ("elsewhere.bin", "not among the files registered"),
    ],
)
def test_intake_refuses_onnx_external_data_that_can_never_load(tmp_path: Path, location: str, refusal: str) -> None:
    folder = _model_with_external_weights(tmp_path / "m", location)
    with pytest.raises(InvalidInput, match=refusal) as caught:
        check_servable([("model.onnx", folder / "model.onnx"), ("weights.bin", folder / "weights.bin")])
    assert "tensor 'W' keeps its data" in str(caught.value) and repr(location) in str(caught.value)


def test_intake_takes_external_data_beside_the_model(tmp_path: Path) -> None:
    folder = _model_with_external_weights(tmp_path / "m", "weights.bin")
    check_servable([("model.onnx", folder / "model.onnx"), ("weights.bin", folder / "weights.bin")])


def test_invocations_takes_texts_in_mlflows_shapes(served_vote: Server) -> None:
    texts = ["good great", "bad awful"]
    expected = [next(iter(a.values())) for a in httpx.post(f"{served_vote.url}/predict", json=texts).json()]
    split = {"columns": ["text"], "data": [[t] for t in texts]}
    records = [{"text": t} for t in texts]
    for body in ({"inputs": texts}, {"instances": texts}, {"dataframe_split": split}, {"dataframe_records": records}):
        got = httpx.post(f"{served_vote.url}/invocations", json=body, timeout=10)
        assert got.status_code == 200, (body, got.text)
        assert got.json() == {"predictions": expected}, body


def test_v2_text_goes_in_the_input_its_metadata_names(served_vote: Server) -> None:
    body = {"inputs": [{"name": "texts", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}
    answer = httpx.post(f"{served_vote.url}/v2/models/votes/infer", json=body, timeout=10)
    assert answer.status_code == 400
    assert "unknown input 'texts'" in answer.json()["error"] and "BYTES input 'text'" in answer.json()["error"]


@pytest.mark.parametrize(
    ("given", "kept"),
    [("my model.joblib", "my_model.joblib"), (".hidden.pkl", "hidden.pkl"), ("caf\u00e9 v2.pkl", "caf__v2.pkl")],
)
def test_a_users_model_file_name_is_kept_path_safe_not_refused(given: str, kept: str) -> None:
    assert safe_file_name(given) == kept
    long = safe_file_name("m" * 400 + ".joblib")
    assert len(long) == 255 and long.endswith(".joblib")


def test_a_model_file_with_a_space_in_its_name_registers(registry: LocalRegistry, tmp_path: Path) -> None:
    """A data scientist's `my model.joblib`: converted, and kept under original/ by a name the path rule takes."""
    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LogisticRegression

    rows = np.random.default_rng(0).random((60, 2))
    model = tmp_path / "my model.joblib"
    joblib.dump(LogisticRegression().fit(rows, rows[:, 0] > 0.5), model)
    result = run_cli("models", "register", str(model), "--name", "spaced")
    assert result.returncode == 0, result.stderr
    assert "original/my_model.joblib" in {f.path for f in open_local().resolve("spaced:1").files}
