"""Tabular models from their frameworks: converted, gated, registered, served (issue 27).

Real scikit-learn, XGBoost and LightGBM models (tests/tabular_models.py) go through
``conveyor models register`` and ``conveyor serve`` as a user runs them; the gate's refusals
are driven with a tolerance no float32 graph meets, and with a conversion that swaps two
features."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import start_server
from tests.registry_fixtures import run_cli
from tests.tabular_models import Trained

KINDS = {
    "risk": ("risk", "risk_sample", "scikit-learn", "tabular-classification", 5),
    "cancer-xgb": ("cancer_xgb", None, "xgboost", "tabular-classification", 30),
    "cancer-lgb": ("cancer_lgb", "cancer_sample", "lightgbm", "tabular-classification", 30),
    "area": ("area_xgb", None, "xgboost", "tabular-regression", 29),
}


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_is_converted_gated_and_registered_beside_its_original(
    name: str, tabular: Trained, conveyor_home: Path, tmp_path: Path
) -> None:
    attribute, sample, framework, task, width = KINDS[name]
    model_file: Path = getattr(tabular, attribute)
    args = ["models", "register", str(model_file), "--name", name, "--json"]
    if sample:
        args += ["--sample", str(getattr(tabular, sample))]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate passed" in result.stderr and framework in result.stderr
    version = json.loads(result.stdout)
    assert version["framework"] == framework and version["framework_version"]
    assert version["lineage"]["source"] == str(model_file.resolve())
    assert version["lineage"]["metrics"]["conversion_rows"] >= 100
    assert version["lineage"]["metrics"]["conversion_max_difference"] <= 1e-4
    if task == "tabular-classification":
        assert version["lineage"]["metrics"]["conversion_label_agreement"] >= 0.999
    kept = {"model.onnx", "model.yaml", f"original/{model_file.name}"}
    if sample:  # the gate's rows, kept to measure a canary's expected agreement on
        kept.add("monitoring/reference-sample.json")
    assert {f["path"] for f in version["files"]} == kept

    run_cli("models", "download", f"{name}:1", "-o", str(tmp_path / "dl"), check=True)
    spec = yaml.safe_load((tmp_path / "dl" / "model.yaml").read_text())
    assert spec["task"] == task and len(spec["features"]) == width
    assert spec["source"]["framework"] == framework
    assert (tmp_path / "dl" / "original" / model_file.name).read_bytes() == model_file.read_bytes()
    if name == "risk":  # types from the sample: strings stay strings, the encoder's categories recorded
        types = {f["name"]: f["type"] for f in spec["features"]}
        assert types == {"age": "number", "bmi": "number", "bp": "number", "sex": "string", "region": "string"}
        assert sorted(spec["labels"]) == ["high", "low"]
    if name == "cancer-lgb":  # LightGBM's sanitised names map back to the sample's own
        assert spec["features"][0]["name"] == "mean radius"


def test_a_conversion_below_the_gate_is_refused_with_its_rows_and_nothing_is_registered(
    tabular: Trained, conveyor_home: Path
) -> None:
    refused = run_cli(
        "models", "register", str(tabular.cancer_lgb), "--name", "strict", "--sample", str(tabular.cancer_sample),
        "--tolerance", "0",
    )  # fmt: skip
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "does not answer as the original" in refused.stderr and "nothing was registered" in refused.stderr
    assert "  row " in refused.stderr and "original " in refused.stderr and "onnx " in refused.stderr
    assert "strict" not in run_cli("models", "list", "--json", check=True).stdout


def _swap_first_two_columns(proto):  # type: ignore[no-untyped-def]
    """A broken converter's output: the same graph, reading feature 0 where feature 1 is and back."""
    import onnx
    from onnx import compose, helper

    [graph_input] = proto.graph.input
    width = graph_input.type.tensor_type.shape.dim[1].dim_value
    order = [1, 0, *range(2, width)]
    permute = helper.make_model(
        helper.make_graph(
            [helper.make_node("Gather", ["input", "order"], ["swapped"], axis=1)],
            "swap",
            [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [None, width])],
            [helper.make_tensor_value_info("swapped", onnx.TensorProto.FLOAT, [None, width])],
            [helper.make_tensor("order", onnx.TensorProto.INT64, [width], order)],
        ),
        opset_imports=[
            *proto.opset_import,
            *([helper.make_opsetid("", 15)] if not any(o.domain == "" for o in proto.opset_import) else []),
        ],
        ir_version=proto.ir_version,
    )
    return compose.merge_models(permute, proto, io_map=[("swapped", graph_input.name)], prefix2="model_")


def test_a_conversion_that_swaps_two_features_is_caught(
    tabular: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.convert import ConvertOptions, convert_model
    from conveyor.convert.frameworks import xgboost_models
    from conveyor.convert.gate import ConversionRefused

    honest = xgboost_models.to_onnx
    monkeypatch.setattr(
        xgboost_models, "to_onnx", lambda loaded, features: _swap_first_two_columns(honest(loaded, features))
    )
    with pytest.raises(ConversionRefused, match=r"labels agree on|largest difference") as refused:
        convert_model(tabular.cancer_xgb, tmp_path / "out", "swapped", ConvertOptions(sample=tabular.cancer_sample))
    assert "\n  row " in str(refused.value)
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.fixture(scope="module")
def served_risk(tabular: Trained, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conveyor.convert import ConvertOptions, convert_model

    folder = tmp_path_factory.mktemp("risk") / "risk"
    convert_model(tabular.risk, folder, "risk", ConvertOptions(sample=tabular.risk_sample, positive_label="high"))
    server = start_server(folder, tmp_path=folder.parent)
    yield server
    server.stop()


ROW = {"age": 61, "bmi": 31.5, "bp": 104.0, "sex": "male", "region": "north"}


def test_records_one_record_split_and_mlflow_shapes_answer_alike(served_risk, tabular: Trained) -> None:  # type: ignore[no-untyped-def]
    import joblib
    import pandas as pd

    url = served_risk.url + "/predict"
    one = httpx.post(url, json=[ROW], timeout=10)
    assert one.status_code == 200, one.text
    answer = one.json()
    original = joblib.load(tabular.risk)
    expected = original.predict_proba(pd.DataFrame([ROW]))[0]
    probabilities = dict(zip(original.classes_, expected, strict=True))
    assert answer["label"] == max(probabilities, key=probabilities.get)
    assert answer["high"] is (answer["label"] == "high")  # --positive-label high: the seed's boolean answer
    assert all(abs(answer["probabilities"][k] - p) < 1e-4 for k, p in probabilities.items())
    columns = list(ROW)[::-1]  # any column order
    split = {"columns": columns, "data": [[ROW[c] for c in columns]] * 2}
    for body in (ROW, split, {"dataframe_records": [ROW]}, {"dataframe_split": split}):
        got = httpx.post(url, json=body, timeout=10)
        assert got.status_code == 200, (body, got.text)
        assert (got.json() if isinstance(got.json(), list) else [got.json()])[0] == answer


def test_invocations_answers_each_of_mlflows_request_shapes_as_mlflow_models_serve_does(served_risk) -> None:  # type: ignore[no-untyped-def]
    rows = [ROW, {**ROW, "age": 23, "bmi": 21.0}]
    labels = [answer["label"] for answer in httpx.post(served_risk.url + "/predict", json=rows, timeout=10).json()]
    columns = list(ROW)
    for body in (
        {"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}},
        {"dataframe_records": rows},
        {"instances": rows},
        {"inputs": {c: [row[c] for row in rows] for c in columns}},
    ):
        got = httpx.post(served_risk.url + "/invocations", json=body, timeout=10)
        assert got.status_code == 200, (body, got.text)
        assert got.json() == {"predictions": labels}, body
    bad = httpx.post(served_risk.url + "/invocations", json={"rows": rows}, timeout=10)
    assert bad.status_code == 422 and "dataframe_split, dataframe_records, instances, inputs" in bad.json()["error"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([{k: v for k, v in ROW.items() if k != "bmi"}], "missing column(s) ['bmi']"),
        ([{**ROW, "zip": "10115"}], "unknown column(s) ['zip']"),
        ([{**ROW, "age": "61"}], "column 'age' must be a finite number"),
        ([{**ROW, "sex": 1}], "column 'sex' must be a string"),
        ([ROW, {**ROW, "bp": None}], "row 1: column 'bp'"),
        ({"columns": ["age"], "data": [[1]]}, "missing column(s)"),
        ([], "no rows given"),
        ("text", "expected JSON records"),
    ],
)
def test_a_bad_row_is_a_422_naming_the_column(served_risk, body, named: str) -> None:  # type: ignore[no-untyped-def]
    got = httpx.post(served_risk.url + "/predict", json=body, timeout=10)
    assert got.status_code == 422, got.text
    assert named in got.json()["error"]


def test_v2_takes_one_named_input_per_column(served_risk) -> None:  # type: ignore[no-untyped-def]
    def column(name: str, value: object) -> dict:
        datatype = "BYTES" if isinstance(value, str) else "FP32"
        return {"name": name, "datatype": datatype, "shape": [2, 1], "data": [value, value]}

    request = {"inputs": [column(k, v) for k, v in ROW.items()]}
    got = httpx.post(served_risk.url + "/v2/models/risk/infer", json=request, timeout=10)
    assert got.status_code == 200, got.text
    outputs = {o["name"]: o for o in got.json()["outputs"]}
    classic = httpx.post(served_risk.url + "/predict", json=[ROW], timeout=10).json()
    assert outputs["label"]["data"] == [classic["label"]] * 2
    assert outputs["probabilities"]["shape"] == [2, 2]
    meta = httpx.get(served_risk.url + "/v2/models/risk", timeout=10).json()
    assert [i["name"] for i in meta["inputs"]] == list(ROW)
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["sex"] == "BYTES"
    request["inputs"] = request["inputs"][1:]
    missing = httpx.post(served_risk.url + "/v2/models/risk/infer", json=request, timeout=10)
    assert missing.status_code == 422 and "missing column(s) ['age']" in missing.json()["error"]


def test_verify_checks_a_tabular_model_with_a_contract_made_from_its_features(served_risk) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("verify", served_risk.url, "--json")
    report = json.loads(result.stdout)
    statuses = {c["id"]: c for c in report["checks"]}
    assert result.returncode == 0, [c for c in report["checks"] if c["status"] == "failed"]
    assert '"probabilities"' in statuses["response.schema"]["message"]
    assert "label" in statuses["v2.infer"]["message"]
    for case in ("missing-column", "unknown-column", "mistyped-column"):
        assert statuses[f"errors.{case}"]["status"] == "passed", statuses[f"errors.{case}"]


def test_a_regressor_answers_values_as_the_original(tabular: Trained, tmp_path: Path) -> None:
    import joblib
    import pandas as pd

    from conveyor.convert import convert_model

    convert_model(tabular.area_xgb, tmp_path / "area", "area")
    server = start_server(tmp_path / "area", tmp_path=tmp_path)
    try:
        rows = pd.read_csv(tabular.cancer_sample).drop(columns=["mean area"]).head(5)
        got = httpx.post(server.url + "/predict", json=rows.to_dict(orient="records"), timeout=10)
        assert got.status_code == 200, got.text
        expected = joblib.load(tabular.area_xgb).predict(rows)
        values = np.array([answer["value"] for answer in got.json()])
        assert np.allclose(values, expected, rtol=1e-5)
    finally:
        server.stop()


def test_a_tabular_spec_needs_its_features() -> None:
    from pydantic import ValidationError

    from conveyor.serving.spec import ModelSpec

    with pytest.raises(ValidationError, match="needs its features"):
        ModelSpec(name="m", task="tabular-regression")
    spec = ModelSpec(name="m", task="tabular-regression", features=[{"name": "x"}])  # type: ignore[list-item]
    assert spec.labels == [] and spec.tokenizer_file is None


def test_a_converted_versions_context_leaves_the_original_out_and_still_checks_the_digest(
    tabular: Trained, conveyor_home: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    run_cli("models", "register", str(tabular.risk), "--name", "risk", "--sample", str(tabular.risk_sample), check=True)
    context = tmp_path / "ctx"
    run_cli("package", "risk:1", "-o", str(context), check=True)
    assert not (context / "model" / "original").exists()  # no pickle, no framework weights in the image
    listing = (context / "omitted.tsv").read_text()
    assert listing.startswith("original/risk.joblib\t")
    dockerfile = (context / "Dockerfile").read_text()
    assert "COPY omitted.tsv /etc/conveyor/omitted.tsv" in dockerfile and "--omitted-files" in dockerfile
    digest = json.loads(run_cli("models", "show", "risk:1", "--json", check=True).stdout)["digest"]

    def start(listing_path: Path) -> subprocess.CompletedProcess[str]:
        # the image's entrypoint; port -1 makes it stop right after the digest check instead of serving
        argv = [sys.executable, "-m", "conveyor.serving", str(context / "model"), "--expect-digest", digest]
        argv += ["--omitted-files", str(listing_path), "--port", "-1"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert "verified" in start(context / "omitted.tsv").stderr
    tampered = tmp_path / "tampered.tsv"
    tampered.write_text(listing.replace("\t", "\t0", 1)[:-2] + "\n")
    refused = start(tampered)
    assert refused.returncode == 1 and "refusing to serve a model that is not the registered one" in refused.stderr


def _optimize(*args: str):  # type: ignore[no-untyped-def]
    result = run_cli("models", "optimize", *args, "--json")
    return result.returncode, json.loads(result.stdout) if result.stdout.strip().startswith("{") else result


def test_optimize_gates_a_tabular_variant_on_rows_and_refuses_one_that_answers_otherwise(
    tabular: Trained, conveyor_home: Path, tmp_path: Path
) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from conveyor.convert import convert_model
    from tests.tabular_models import risk_frame

    run_cli("models", "register", str(tabular.risk), "--name", "risk", "--sample", str(tabular.risk_sample), check=True)
    code, outcome = _optimize(
        "risk:1",
        "--eval",
        str(tabular.risk_sample),
        "--method",
        "int8",
        "--method",
        "graph",
        "--no-measure",
        "--dry-run",
    )
    assert code == 0, outcome
    (int8,) = outcome["candidates"]  # graph optimizations change nothing in so small a graph: skipped, said why
    assert list(outcome["skipped"]) == ["graph"] and outcome["skipped"]["graph"].startswith("the graph did not change")
    assert int8["compared"] == 120 and int8["agreement"] == 1.0 and int8["passed"]  # the CSV's rows, typed

    frame, labels = risk_frame()
    pipeline = joblib.load(tabular.risk)
    shuffled = np.random.default_rng(0).permutation(labels)  # a variant that answers something else
    broken = Pipeline([("prep", pipeline.named_steps["prep"]), ("clf", LogisticRegression())]).fit(frame, shuffled)
    joblib.dump(broken, tmp_path / "broken.joblib")
    convert_model(tmp_path / "broken.joblib", tmp_path / "broken", "risk")
    result = run_cli("models", "optimize", "risk:1", "--eval", str(tabular.risk_sample), "--variant",
                     str(tmp_path / "broken" / "model.onnx"), "--no-measure")  # fmt: skip
    assert result.returncode == 1 and "no variant agrees with risk:1" in result.stdout
    assert "'age':" in result.stdout and ("high -> low" in result.stdout or "low -> high" in result.stdout)
    assert json.loads(run_cli("models", "show", "risk", "--json", check=True).stdout)["latest_version"] == 1


def test_optimize_compares_a_regressors_values_within_a_tolerance(
    tabular: Trained, conveyor_home: Path, tmp_path: Path
) -> None:
    import pandas as pd

    run_cli("models", "register", str(tabular.area_xgb), "--name", "area", check=True)
    rows = tmp_path / "rows.json"
    rows.write_text(pd.read_csv(tabular.cancer_sample).drop(columns=["mean area"]).head(40).to_json(orient="records"))
    run_cli("models", "download", "area:1", "-o", str(tmp_path / "area"), check=True)
    variant = str(tmp_path / "area" / "model.onnx")  # a tree ensemble: no method changes it, a given graph is gated
    code, outcome = _optimize("area:1", "--eval", str(rows), "--variant", variant, "--no-measure", "--dry-run")
    assert code == 0, outcome
    (given,) = outcome["candidates"]
    assert given["compared"] == 40 and given["agreement"] == 1.0 and given["max_probability_diff"] < 1e-3


STEPS_MODULE = """
from sklearn.base import BaseEstimator, TransformerMixin


class Doubled(BaseEstimator, TransformerMixin):
    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x * 2
"""


def test_a_custom_transformer_beside_the_users_script_unpickles_from_the_working_or_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``python train.py`` found ``my_steps.py`` beside it, registration finds it in the cwd or beside the model."""
    import importlib
    import sys

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from conveyor.convert.converters.tabular import load_original
    from conveyor.errors import InvalidInput

    project = tmp_path / "project"
    project.mkdir()
    (project / "my_steps.py").write_text(STEPS_MODULE)
    monkeypatch.syspath_prepend(str(project))  # the training script's view
    steps = importlib.import_module("my_steps")
    x = np.arange(40, dtype=float).reshape(20, 2)
    joblib.dump(make_pipeline(steps.Doubled(), LogisticRegression()).fit(x, x[:, 0] > 20), project / "model.joblib")
    monkeypatch.delitem(sys.modules, "my_steps")
    sys.path.remove(str(project))  # a fresh `conveyor` process: only the folders registration adds
    path_before = list(sys.path)

    monkeypatch.chdir(project)  # conveyor models register model.joblib, from the project
    assert load_original(project / "model.joblib")[0].NAME == "scikit-learn"
    monkeypatch.delitem(sys.modules, "my_steps")
    monkeypatch.chdir(tmp_path)  # conveyor models register project/model.joblib
    assert load_original(project / "model.joblib")[0].NAME == "scikit-learn"
    monkeypatch.delitem(sys.modules, "my_steps")
    assert sys.path == path_before  # the folders were on the path only while unpickling

    (tmp_path / "elsewhere").mkdir()
    moved = (project / "model.joblib").rename(tmp_path / "elsewhere" / "model.joblib")
    with pytest.raises(InvalidInput, match=r"needs the module my_steps to load: .* run from the folder that holds"):
        load_original(moved)


def test_a_lightgbm_model_with_a_pandas_category_column_is_refused_naming_the_categorical_columns(
    tmp_path: Path,
) -> None:
    import joblib
    import lightgbm
    import pandas as pd

    from conveyor.convert.converters.tabular import load_original
    from conveyor.errors import InvalidInput

    rng = np.random.default_rng(0)
    colors = pd.Categorical(rng.choice(["red", "green", "blue"], 300))
    frame = pd.DataFrame({"x": rng.normal(size=300), "color": colors})
    labels = ((frame.x > 0) | (frame.color == "red")).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, labels)
    joblib.dump(model, tmp_path / "wrapper.joblib")
    model.booster_.save_model(tmp_path / "native.txt")
    for path in (tmp_path / "wrapper.joblib", tmp_path / "native.txt"):
        with pytest.raises(InvalidInput, match=r"splits \['color'\] as categorical features \(pandas category"):
            load_original(path)
    codes = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame.assign(color=colors.codes), labels)
    codes.booster_.save_model(tmp_path / "codes.txt")
    assert load_original(tmp_path / "codes.txt")[0].NAME == "lightgbm"  # the advice works


def test_a_lightgbm_classifier_on_bool_labels_converts_and_answers_them_as_scikit_learn_names_them(
    tmp_path: Path,
) -> None:
    import joblib
    import lightgbm
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from conveyor.convert.converters.tabular import convert_tabular
    from conveyor.serving.runtime import RuntimeOptions
    from conveyor.serving.spec import resolve_model
    from conveyor.serving.tabular import TabularModel, answers

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    churned = pd.Series(frame.a + 0.3 * rng.normal(size=300) > 0)  # a pandas bool Series
    trained = {
        "series": lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(frame, churned),
        "array": lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(frame, churned.to_numpy()),
        "sklearn": LogisticRegression().fit(frame, churned),
    }
    served = {}
    for kind, model in trained.items():
        joblib.dump(model, tmp_path / f"{kind}.joblib")
        conversion = convert_tabular(tmp_path / f"{kind}.joblib", tmp_path / kind, kind)
        assert conversion.report.passed and conversion.spec.labels == ["False", "True"]
        model_answers = TabularModel(resolve_model(tmp_path / kind), RuntimeOptions())
        scores = model_answers.score_columns({"a": [2.0, -2.0], "b": [0.0, 0.0]})
        served[kind] = [answer["label"] for answer in answers(conversion.spec, scores)]
    assert served == {kind: ["True", "False"] for kind in trained}  # LightGBM answers as scikit-learn does
