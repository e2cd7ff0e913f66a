"""One bad request never fails another; missing values and unseen categories as the model sees them;
binary v2 bytes for every task; KServe v1 instances on a tabular model (issue 45, items 2, 4, 5).

A real scikit-learn pipeline, as data scientists write it (a SimpleImputer on the numbers,
scikit-learn's default ``OneHotEncoder(handle_unknown="error")`` on a string column, and a
string column with its own imputer marker), is registered through the gate, then served in
process: the real data plane, batcher and routes behind httpx's ASGI transport, 60 requests
at once.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from conveyor.serving.spec import ModelSpec

ROW = {"income": 52.0, "age": 41.0, "city": "Lyon", "plan": "gold"}
CITIES = ["Berlin", "Lyon", "Oslo", "Porto", "Quito"]


def _frame(rows: int = 300) -> tuple[Any, np.ndarray]:
    import pandas as pd

    random = np.random.default_rng(45)
    income = random.normal(50, 15, rows)
    age = random.uniform(20, 70, rows)
    city = random.choice(CITIES, rows)
    plan = random.choice(["gold", "basic", "none"], rows)
    target = np.where(income + (city == "Oslo") * 10 + random.normal(0, 5, rows) > 55, "yes", "no")
    frame = pd.DataFrame({"income": income, "age": age, "city": city, "plan": plan})
    frame.loc[frame.index % 7 == 0, "income"] = np.nan  # pandas writes these as null in to_json(orient="records")
    frame.loc[frame.index % 11 == 0, "plan"] = ""
    return frame, target


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from conveyor.convert import ConvertOptions, convert_model

    folder = tmp_path_factory.mktemp("isolation")
    frame, target = _frame()
    prep = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["income", "age"]),
            ("city", OneHotEncoder(), ["city"]),  # handle_unknown="error": scikit-learn's default
            (
                "plan",
                Pipeline(
                    [
                        ("impute", SimpleImputer(missing_values="", strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                ["plan"],
            ),
        ]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(frame, target)
    joblib.dump(model, folder / "churn.joblib")
    frame.head(150).to_json(folder / "churn.json", orient="records")  # NaN in the sample: null
    out = folder / "churn"
    convert_model(folder / "churn.joblib", out, "churn", ConvertOptions(sample=folder / "churn.json"))
    return out


@pytest.fixture
def client(registered: Path) -> Iterator[httpx.AsyncClient]:
    yield from _client(registered)


def _client(folder: Path, max_batch_wait_ms: float = 20.0) -> Iterator[httpx.AsyncClient]:
    from conveyor.serving.app import create_app
    from conveyor.serving.dataplane import DataPlane, ServingOptions
    from conveyor.serving.spec import resolve_model

    plane = DataPlane(resolve_model(folder), ServingOptions(max_batch_size=64, max_batch_wait_ms=max_batch_wait_ms))
    transport = httpx.ASGITransport(app=create_app(plane))
    client = httpx.AsyncClient(transport=transport, base_url="http://model")
    client.plane = plane  # type: ignore[attr-defined]
    yield client


async def _loaded(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    plane = client.plane  # type: ignore[attr-defined]
    await plane.load()
    try:
        yield client
    finally:
        await plane.close()


def _run(client: httpx.AsyncClient, calls: Any) -> Any:
    async def main() -> Any:
        async for loaded in _loaded(client):
            return await calls(loaded)

    return asyncio.run(main())


def _spec(folder: Path) -> ModelSpec:
    from conveyor.serving.spec import load_spec_file

    return load_spec_file(folder / "model.yaml")


def test_registration_records_which_columns_may_be_missing_and_which_refuse_unseen_categories(
    registered: Path,
) -> None:
    features = {f.name: f for f in _spec(registered).features}
    assert features["income"].missing and features["age"].missing  # the SimpleImputer: the graph answers alike
    assert features["plan"].missing and features["plan"].missing_as == ""  # the imputer's own marker
    assert features["city"].unseen == "refuse" and features["city"].values == CITIES
    assert features["plan"].unseen == "accept"  # handle_unknown="ignore"
    assert not features["city"].missing  # the encoder fails on NaN: a null there is a 422


def test_sixty_concurrent_requests_with_one_unseen_category_answer_fifty_nine(client: httpx.AsyncClient) -> None:
    async def calls(loaded: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [[{**ROW, "income": 30.0 + i}] for i in range(60)]
        bodies[17] = [{**ROW, "city": "Mars"}]
        return await asyncio.gather(*(loaded.post("/predict", json=body) for body in bodies))

    answers = _run(client, calls)
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 59 and statuses[17] == 422, statuses
    error = answers[17].json()["error"]
    assert "column 'city'" in error and "'Mars'" in error and "'Berlin'" in error and "not trained on" in error
    assert all(r.json()["label"] in ("yes", "no") for i, r in enumerate(answers) if i != 17)


def test_a_batch_the_model_fails_is_answered_request_by_request(registered: Path, tmp_path: Path) -> None:
    """An older model.yaml that does not record ``unseen``: the graph itself fails on the batch."""
    import shutil

    import yaml

    folder = tmp_path / "older"
    shutil.copytree(registered, folder)
    raw = yaml.safe_load((folder / "model.yaml").read_text())
    for feature in raw["features"]:
        feature.pop("unseen", None)
    (folder / "model.yaml").write_text(yaml.safe_dump(raw))
    client = next(_client(folder, max_batch_wait_ms=50.0))
    batches: list[int] = []

    async def calls(loaded: httpx.AsyncClient) -> list[httpx.Response]:
        loaded.plane._batcher._on_batch = lambda stats: batches.append(stats.size)  # type: ignore[attr-defined]
        bodies = [[{**ROW, "age": 20.0 + i}] for i in range(60)]
        bodies[5] = [{**ROW, "city": "Mars"}]
        return await asyncio.gather(*(loaded.post("/predict", json=body) for body in bodies))

    answers = _run(client, calls)
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 59 and statuses[5] == 422, statuses
    assert "the model failed on these values: Unknown Category" in answers[5].json()["error"]
    assert max(batches) > 1, "the requests were never batched: nothing was isolated"


@pytest.mark.parametrize(
    ("row", "status", "named"),
    [
        ({**ROW, "income": None}, 200, ""),  # the imputer takes it
        ({**ROW, "plan": None}, 200, ""),  # the string imputer's marker reaches the graph
        ({**ROW, "city": None}, 422, "column 'city' has a missing value (null)"),
        ({**ROW, "age": None}, 200, ""),  # the pipeline's imputer covers age as well
    ],
)
def test_null_reaches_the_model_where_it_takes_one_and_is_a_422_naming_the_column_elsewhere(
    client: httpx.AsyncClient, registered: Path, row: dict[str, Any], status: int, named: str
) -> None:
    import joblib
    import pandas as pd

    got = _run(client, lambda loaded: loaded.post("/predict", json=[row]))
    assert got.status_code == status, got.text
    if status != 200:
        assert named in got.json()["error"] and "missing value" in got.json()["error"]
        return
    original = joblib.load(registered / "original" / "churn.joblib")
    markers = {f.name: f.missing_as for f in _spec(registered).features}  # a missing string is its imputer's marker
    frame = pd.DataFrame(
        [{k: ((np.nan if markers[k] is None else markers[k]) if v is None else v) for k, v in row.items()}]
    )
    expected = dict(zip(original.classes_, original.predict_proba(frame)[0], strict=True))
    assert all(abs(got.json()["probabilities"][label] - p) < 1e-4 for label, p in expected.items())


def test_pandas_records_with_nan_are_answered_as_the_original(client: httpx.AsyncClient, registered: Path) -> None:
    import joblib

    frame, _ = _frame(30)
    body = frame.to_json(orient="records")  # NaN as null, as pandas writes it
    got = _run(
        client, lambda loaded: loaded.post("/predict", content=body, headers={"content-type": "application/json"})
    )
    assert got.status_code == 200, got.text
    original = joblib.load(registered / "original" / "churn.joblib")
    expected = original.predict_proba(frame)
    served = np.array([[a["probabilities"][c] for c in original.classes_] for a in got.json()])
    assert np.abs(served - expected).max() < 1e-4


def test_a_reference_csv_written_by_pandas_is_scored_with_its_empty_cells_as_missing(
    registered: Path, tmp_path: Path
) -> None:
    """pandas writes NaN as an empty cell; `models register --reference rows.csv` fed it to the model as ''
    (a traceback: could not convert string to float). It is a missing value, as in the sample."""
    import joblib

    from conveyor.monitoring.observe import Observer
    from conveyor.serving.spec import resolve_model

    frame, _ = _frame(30)
    frame.to_csv(tmp_path / "reference.csv", index=False)
    assert "\n," in (tmp_path / "reference.csv").read_text()  # a row whose income (the first column) is NaN
    columns = Observer(resolve_model(registered)).reference_columns(tmp_path / "reference.csv")
    original = joblib.load(registered / "original" / "churn.joblib")
    assert sorted(columns.by_name["output.label"].values) == sorted(original.predict(frame))
    assert len(columns.by_name["feature.income"].values) == 30 - frame.income.isna().sum()


def test_v2_takes_null_and_nan_as_missing_and_refuses_non_utf8_strings_by_name(client: httpx.AsyncClient) -> None:
    def column(name: str, values: list[Any]) -> dict[str, Any]:
        datatype = "BYTES" if any(isinstance(v, str) for v in values) else "FP64"
        return {"name": name, "datatype": datatype, "shape": [len(values), 1], "data": values}

    json_body = {"inputs": [column("income", [None, 40.0]), column("age", [30.0, 31.0]),
                            column("city", ["Oslo", "Lyon"]), column("plan", [None, "gold"])]}  # fmt: skip
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "income", "datatype": "FP64", "shape": [1, 1], "parameters": {"binary_data_size": 8}},
                {"name": "age", "datatype": "FP64", "shape": [1, 1], "parameters": {"binary_data_size": 8}},
                {"name": "city", "datatype": "BYTES", "shape": [1, 1], "parameters": {"binary_data_size": 9}},
                {"name": "plan", "datatype": "BYTES", "shape": [1, 1], "parameters": {"binary_data_size": 8}},
            ]
        }
    )
    latin1 = "Zürich".encode("latin-1")
    binary = (
        struct.pack("<d", float("nan")) + struct.pack("<d", 30.0) + struct.pack("<I", 5) + b"Porto"
        + struct.pack("<I", 4) + b"gold"
    )  # fmt: skip
    bad = (
        struct.pack("<d", 50.0) + struct.pack("<d", 30.0) + struct.pack("<I", 5) + latin1[:5]
        + struct.pack("<I", 4) + b"gold"
    )  # fmt: skip
    assert not _is_utf8(latin1[:5])
    headers = {"inference-header-content-length": str(len(header))}

    async def calls(loaded: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await loaded.post("/v2/models/churn/infer", json=json_body),
            await loaded.post("/v2/models/churn/infer", content=header + binary, headers=headers),
            await loaded.post("/v2/models/churn/infer", content=header + bad, headers=headers),
        ]

    by_json, by_binary, refused = _run(client, calls)
    assert by_json.status_code == 200, by_json.text
    assert by_binary.status_code == 200, by_binary.text
    assert refused.status_code == 422, refused.text
    assert "input 'city'" in refused.json()["error"] and "UTF-8" in refused.json()["error"]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_kserve_v1_instances_are_records_or_values_in_the_features_order(client: httpx.AsyncClient) -> None:
    async def calls(loaded: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await loaded.post("/predict", json=[ROW]),
            await loaded.post("/predict", json={"instances": [ROW]}),
            await loaded.post("/predict", json={"instances": [list(ROW.values())]}),
            await loaded.post("/predict", json={"rows": [ROW]}),
        ]

    plain, records, values, unknown = _run(client, calls)
    assert plain.status_code == records.status_code == values.status_code == 200, (records.text, values.text)
    assert plain.json() == records.json() == values.json()
    assert unknown.status_code == 422 and "'instances'" in unknown.json()["error"]
    assert "missing column" not in unknown.json()["error"]


def test_a_sample_with_nan_where_the_model_takes_none_is_refused_saying_so(tmp_path: Path) -> None:
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from conveyor.convert import ConvertOptions, convert_model
    from conveyor.errors import InvalidInput

    frame, target = _frame(120)
    numbers = frame[["income", "age"]].fillna(50.0)
    model = Pipeline(
        [("prep", ColumnTransformer([("num", StandardScaler(), ["income", "age"])])), ("clf", LogisticRegression())]
    ).fit(numbers, target)
    joblib.dump(model, tmp_path / "strict.joblib")
    frame[["income", "age"]].to_csv(tmp_path / "rows.csv", index=False)  # with its NaN
    with pytest.raises(InvalidInput) as refused:
        convert_model(
            tmp_path / "strict.joblib", tmp_path / "out", "strict", ConvertOptions(sample=tmp_path / "rows.csv")
        )
    message = str(refused.value)
    assert "column 'income' has a missing value (NaN)" in message and "rows.csv" in message
    assert "float32" not in message
    assert not (tmp_path / "out").exists()


def test_verify_s_contract_for_the_model_sends_an_unseen_category_and_a_missing_value_and_holds(
    client: httpx.AsyncClient,
) -> None:
    from conveyor.verify.contract import Contract
    from conveyor.verify.task_contracts import for_task

    async def calls(loaded: httpx.AsyncClient) -> list[tuple[Any, httpx.Response]]:
        metadata = (await loaded.get("/v2/models/churn")).json()
        contract = for_task(Contract(), metadata)
        cases = {case.name: case for case in contract.invalid}
        assert {"unseen-category", "missing-value"} <= set(cases)
        return [
            (case, await loaded.post("/predict", content=case.body, headers={"content-type": case.content_type}))
            for case in cases.values()
        ]

    for case, got in _run(client, calls):
        assert case.status == "4xx" or got.status_code == case.status, (case.name, got.text)
        assert case.error_contains is None or case.error_contains in got.json()["error"], (case.name, got.text)


def test_the_openapi_document_takes_null_where_a_column_may_be_missing_and_only_known_refused_categories(
    client: httpx.AsyncClient,
) -> None:
    import jsonschema

    document = _run(client, lambda loaded: loaded.get("/openapi.json")).json()
    schema = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    valid = jsonschema.Draft202012Validator(schema).is_valid
    assert valid([{**ROW, "income": None, "plan": None}])
    assert not valid([{**ROW, "city": None}]) and not valid([{**ROW, "city": "Mars"}])
    assert valid([{**ROW, "plan": "platinum"}])  # handle_unknown="ignore": any string


def test_xgboost_takes_a_sample_with_nan_and_null_as_its_own_missing_value(tabular: Any, tmp_path: Path) -> None:
    import pandas as pd
    import xgboost

    from conveyor.convert import ConvertOptions, convert_model

    frame = pd.read_csv(tabular.cancer_sample)
    frame.loc[frame.index % 5 == 0, "mean radius"] = np.nan
    frame.to_csv(tmp_path / "rows.csv", index=False)  # an empty cell: NaN
    out = tmp_path / "cancer"
    conversion = convert_model(tabular.cancer_xgb, out, "cancer", ConvertOptions(sample=tmp_path / "rows.csv"))
    assert all(f.missing for f in conversion.spec.features)  # XGBoost's trees route a missing value themselves
    row = frame.iloc[[3]].to_dict(orient="records")[0]
    got = _run(next(_client(out)), lambda loaded: loaded.post("/predict", json=[{**row, "mean radius": None}]))
    assert got.status_code == 200, got.text
    booster = xgboost.XGBClassifier()
    booster.load_model(tabular.cancer_xgb)
    expected = booster.predict_proba(pd.DataFrame([{**row, "mean radius": np.nan}]))[0]
    assert abs(got.json()["probabilities"]["1"] - expected[1]) < 1e-4


def test_a_string_feature_that_may_be_missing_names_the_string_the_graph_takes_for_it() -> None:
    from pydantic import ValidationError

    from conveyor.serving.spec import Feature

    assert Feature(name="plan", type="string", missing=True, missing_as="").missing_as == ""
    with pytest.raises(ValidationError, match="needs missing_as"):
        Feature(name="plan", type="string", missing=True)
    with pytest.raises(ValidationError, match="missing_as is for a string feature"):
        Feature(name="income", type="number", missing=True, missing_as="")


def test_a_csv_pandas_wrote_with_nan_is_a_reference_and_an_agreement_sample(
    registered: Path, conveyor_home: Path, tmp_path: Path
) -> None:
    """``to_csv`` writes NaN (and the imputer's "" marker) as an empty cell: a missing value, as the
    server takes it, wherever Conveyor reads rows from a CSV (--reference, --sample, --eval)."""
    from conveyor.convert.options import ConvertOptions
    from conveyor.registration import register_path
    from conveyor.registry.config import open_local
    from conveyor.rollout.offline_agreement import measure_expected_agreement
    from conveyor.verify.examples import read_examples

    frame, target = _frame(40)
    frame.assign(truth=target).to_csv(tmp_path / "rows.csv", index=False)  # an evaluation split, with its truth
    registry = open_local()
    for _ in range(2):
        register_path(
            registry, registered, "churn", ConvertOptions(), reference=tmp_path / "rows.csv", report=lambda _: None
        )
    kept = json.loads((registry.cached("churn:1")[1] / "monitoring" / "reference-sample.json").read_text())
    assert kept[0]["income"] is None and kept[0]["plan"] is None and kept[1]["city"] in CITIES
    assert "truth" not in kept[0]  # the model's inputs only
    expected = measure_expected_agreement("churn:1", "churn:2")  # both versions answer every row, null included
    assert expected is not None and expected.share == 1.0 and expected.items == 40
    features = [f.model_dump(exclude_none=True) for f in _spec(registered).features]
    golden = read_examples(tmp_path / "rows.csv", features, limit=None)  # init --sample, optimize --eval
    assert [{k: v for k, v in row.items() if k != "truth"} for row in golden] == kept


def test_a_boolean_column_as_pandas_writes_it_is_read_typed_and_may_be_null_in_v2_json(tmp_path: Path) -> None:
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    from conveyor.convert import ConvertOptions, convert_model
    from conveyor.monitoring.observe import read_items

    frame, target = _frame(200)
    frame = frame.assign(paperless=frame.index % 3 == 0)[["income", "paperless"]]
    prep = ColumnTransformer([("num", "passthrough", ["income", "paperless"])])
    model = Pipeline([("prep", prep), ("clf", HistGradientBoostingClassifier(max_iter=10))]).fit(frame, target)
    joblib.dump(model, tmp_path / "flags.joblib")
    frame.to_csv(tmp_path / "rows.csv", index=False)  # True / False, NaN as an empty cell
    out = tmp_path / "flags"
    conversion = convert_model(tmp_path / "flags.joblib", out, "flags", ConvertOptions(sample=tmp_path / "rows.csv"))
    paperless = next(f for f in conversion.spec.features if f.name == "paperless")
    assert paperless.type == "boolean" and paperless.missing  # the trees route a missing value themselves
    items = list(read_items(tmp_path / "rows.csv", conversion.spec))
    assert items[0] == {"income": None, "paperless": True} and items[1]["paperless"] is False  # not the string

    def column(name: str, datatype: str, values: list[Any]) -> dict[str, Any]:
        return {"name": name, "datatype": datatype, "shape": [len(values), 1], "data": values}

    body = {"inputs": [column("income", "FP64", [40.0, 40.0]), column("paperless", "BOOL", [None, True])]}
    got = _run(next(_client(out)), lambda loaded: loaded.post("/v2/models/flags/infer", json=body))
    assert got.status_code == 200, got.text
    expected = model.predict(pd.DataFrame({"income": [40.0, 40.0], "paperless": [np.nan, 1.0]}))
    assert got.json()["outputs"][0]["data"] == expected.tolist()


def test_nan_in_a_json_body_is_a_400_saying_to_send_null(client: httpx.AsyncClient) -> None:
    nan = b'[{"income": NaN, "age": 41.0, "city": "Lyon", "plan": "gold"}]'
    v2 = b'{"inputs": [{"name": "income", "datatype": "FP64", "shape": [1], "data": [Infinity]}]}'
    json_type = {"content-type": "application/json"}

    async def calls(loaded: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await loaded.post("/predict", content=nan, headers=json_type),
            await loaded.post("/v2/models/churn/infer", content=v2, headers=json_type),
        ]

    for got in _run(client, calls):
        assert got.status_code == 400 and "send a missing value as null" in got.json()["error"], got.text


def test_xgboost_trained_on_a_pandas_bool_column_converts_and_takes_booleans_and_null(tmp_path: Path) -> None:
    """XGBoost makes a bool column an indicator feature, whose nodes it dumps without a threshold
    (onnxmltools failed: KeyError 'split_condition')."""
    import pandas as pd
    import xgboost

    from conveyor.convert import ConvertOptions, convert_model

    frame, target = _frame(200)
    frame = frame.assign(paperless=frame.index % 3 == 0)[["income", "age", "paperless"]]
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(frame, target == "yes")
    model.save_model(tmp_path / "flags.json")
    frame.to_json(tmp_path / "rows.json", orient="records")
    for sample in (tmp_path / "rows.json", None):  # typed by the sample, or by the model's own feature types
        out = tmp_path / ("sampled" if sample else "generated")
        conversion = convert_model(tmp_path / "flags.json", out, "flags", ConvertOptions(sample=sample))
        assert {f.name: f.type for f in conversion.spec.features}["paperless"] == "boolean"
    rows = [{"income": 40.0, "age": 30.0, "paperless": True}, {"income": None, "age": 50.0, "paperless": False}]
    got = _run(next(_client(tmp_path / "sampled")), lambda loaded: loaded.post("/predict", json=rows))
    assert got.status_code == 200, got.text
    expected = model.predict_proba(pd.DataFrame(rows).astype({"income": float}))[:, 1]
    assert np.abs(np.array([a["probabilities"]["1"] for a in got.json()]) - expected).max() < 1e-4
