"""Payload logging and drift, with real traffic through a real server.

The risk model (a scikit-learn Pipeline over a frame built from scikit-learn's diabetes data) is
served with every request logged; its reference is one random half of the data.  Traffic drawn
from the other half must raise no drift over ten windows; traffic drawn from the older half of
the patients (a shifted ``age``) must raise it in the first window.  The false alarms are
printed (docs/monitoring.md records them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import REPO, Server, start_server
from tests.tabular_models import Trained, risk_frame
from tests.waiting import wait_for

WINDOW = 200
ROWS_PER_REQUEST = 5


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    frame, _ = risk_frame()
    order = np.random.default_rng(7).permutation(len(frame))
    reference, rest = frame.iloc[order[: len(frame) // 2]], frame.iloc[order[len(frame) // 2 :]]
    folder = tmp_path_factory.mktemp("monitoring")
    reference.to_csv(folder / "reference.csv", index=False)
    return folder, reference, rest


@pytest.fixture(scope="module")
def risk_folder(tabular: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conveyor.convert import ConvertOptions, convert_model

    folder = tmp_path_factory.mktemp("risk-monitored") / "risk"
    convert_model(tabular.risk, folder, "risk", ConvertOptions(sample=tabular.risk_sample, positive_label="high"))
    return folder


def _serve_logged(folder: Path, logs: Path | str, tmp_path: Path, *extra: str) -> Server:
    return start_server(
        folder, "--log-payloads", str(logs), "--log-sample", "1", "--log-rotate-seconds", "1", *extra, tmp_path=tmp_path
    )


def _send(server: Server, rows: list[dict[str, object]]) -> list[str]:
    ids = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for start in range(0, len(rows), ROWS_PER_REQUEST):
            answer = client.post("/predict", json=rows[start : start + ROWS_PER_REQUEST])
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["x-request-id"])
    return ids


def _monitor(folder: Path, logs: Path | str, reference: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    command = [sys.executable, "-m", "conveyor.cli.main", "monitor", str(folder), "--logs", str(logs), "--json"]
    result = subprocess.run(
        [*command, "--reference", str(reference), "--window", str(WINDOW), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def _records(rows) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    return json.loads(rows.to_json(orient="records"))


def _wait_for_files(logs: Path, requests: int, server: Server) -> None:
    """Stop the server (it finishes its open file) and check every request reached the log."""
    server.stop()
    written = sum(len(p.read_text().splitlines()) for p in logs.rglob("*.jsonl"))
    assert written == requests, f"{written} of {requests} requests logged"
    assert not list(logs.rglob("*.partial")), "the server left a file unfinished"


def _logged_traffic(folder: Path, tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    """``rows`` through a server that logs every request; the log's folder once the server stopped."""
    logs = tmp_path / "logs"
    server = _serve_logged(folder, logs, tmp_path)
    ids = _send(server, rows)
    assert len(set(ids)) == len(ids)  # a fresh request id for each
    _wait_for_files(logs, len(ids), server)
    return logs


def test_traffic_like_the_reference_raises_no_drift_over_ten_windows(
    risk_folder: Path,
    halves,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder, _, rest = halves
    logs = _logged_traffic(risk_folder, tmp_path, _records(rest.sample(n=10 * WINDOW, replace=True, random_state=11)))
    code, report = _monitor(risk_folder, logs, folder / "reference.csv")
    windows = [w for w in report["windows"] if w["judged"]]
    assert len(windows) == 10
    alarms = [(w["index"], w["drifted"]) for w in windows if w["drifted"]]
    worst = max(c["psi"] for w in windows for c in w["columns"])
    least = min(c["pvalue"] for w in windows for c in w["columns"])
    print(
        f"in-distribution: {len(alarms)} false alarms in 10 windows of {WINDOW}; "
        f"largest PSI {worst:.3f}, least p {least:.2g}"
    )
    assert alarms == [] and code == 0
    watched = {c["name"] for c in windows[0]["columns"]}
    assert {"feature.age", "feature.bmi", "feature.sex", "output.label", "output.confidence"} <= watched


def test_traffic_from_older_patients_raises_drift_on_age_within_one_window(
    risk_folder: Path,
    halves,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder, _, rest = halves
    older = rest[rest.age > rest.age.median()]
    logs = _logged_traffic(risk_folder, tmp_path, _records(older.sample(n=WINDOW, replace=True, random_state=3)))
    code, report = _monitor(risk_folder, logs, folder / "reference.csv", "--html", str(tmp_path / "drift.html"))
    first = report["windows"][0]
    assert code == 1 and report["drift"] is True
    assert "feature.age" in first["drifted"], first
    age = next(c for c in first["columns"] if c["name"] == "feature.age")
    print(f"shifted age: drift in window 1 ({first['items']} rows), PSI {age['psi']:.3f}, KS p {age['pvalue']:.1e}")
    assert age["pvalue"] < 0.01 and age["window"]["p50"] > age["reference"]["p50"]
    page = (tmp_path / "drift.html").read_text()
    assert "feature.age" in page and "<svg" in page


def test_a_logged_record_keeps_the_request_id_and_drops_and_hashes_what_it_is_told(
    risk_folder: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    server = _serve_logged(risk_folder, logs, tmp_path, "--log-drop", "region", "--log-hash", "sex")
    row = {"age": 61, "bmi": 31.5, "bp": 104, "sex": "male", "region": "north"}
    answer = httpx.post(server.url + "/predict", json=[row], headers={"X-Request-Id": "order-17"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "order-17"
    bad = httpx.post(server.url + "/predict", json=[{"age": 61}], timeout=10)
    assert bad.status_code == 422 and len(bad.headers["x-request-id"]) == 16
    _wait_for_files(logs, 1, server)  # an answered request is logged; a refused one is not
    (record,) = [json.loads(line) for p in logs.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert record["request_id"] == "order-17" and record["model"] == "risk" and record["version"] == "1"
    (logged,) = record["inputs"]
    assert "region" not in logged and logged["sex"].startswith("sha256:") and logged["age"] == 61
    assert record["outputs"] == [answer.json()] and len(record["probabilities"][0]) == 2
    assert record["latency_ms"] > 0 and "T" in record["time"]


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 64 KiB tmpfs: a real ENOSPC after a few hundred records (mounting needs root, as CI runs)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_loses_no_prediction_and_counts_what_it_dropped(
    risk_folder: Path, tiny_disk: Path, tmp_path: Path
) -> None:
    server = _serve_logged(risk_folder, tiny_disk, tmp_path, "--log-rotate-mib", "1")
    row = {"age": 61, "bmi": 31.5, "bp": 104, "sex": "male", "region": "north"}
    started = time.perf_counter()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answers = [client.post("/predict", json=[row] * 4) for _ in range(600)]
    seconds = time.perf_counter() - started
    assert all(a.status_code == 200 for a in answers)

    def every_record_accounted_for() -> str | None:  # the log is written off the request path: it lags
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        return metrics if _counter(metrics, "written") + _counter(metrics, "store_error") >= 600 else None

    metrics = wait_for(every_record_accounted_for, timeout=15, what="600 records written or counted as dropped")
    server.stop()
    written, dropped = _counter(metrics, "written"), _counter(metrics, "store_error")
    assert written > 0 and dropped > 0 and written + dropped == 600, metrics
    kept = sum(len(p.read_text().splitlines()) for p in tiny_disk.rglob("*.jsonl"))
    assert kept == written  # the lines written before the disk filled are whole and readable
    assert all(json.loads(line) for p in tiny_disk.rglob("*.jsonl") for line in p.read_text().splitlines())
    print(f"full disk: 600 predictions answered in {seconds:.2f}s; {written:.0f} records kept, {dropped:.0f} counted")


def _counter(metrics: str, outcome: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("conveyor_payload_log_records_total") and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no payload log counter for {outcome}")


def test_payloads_logged_to_s3_are_read_back_by_monitor(
    risk_folder: Path,
    halves,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import boto3

    folder, _, rest = halves
    monkeypatch.setenv("CONVEYOR_S3_ENDPOINT_URL", s3_endpoint)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="payloads")
    server = _serve_logged(risk_folder, "s3://payloads/prod", tmp_path)
    ids = _send(server, _records(rest.sample(n=WINDOW, replace=True, random_state=5)))
    server.stop()  # the open file is finished and uploaded on the way out
    _, report = _monitor(risk_folder, "s3://payloads/prod", folder / "reference.csv")
    assert report["records"] == len(ids) and report["windows"][0]["judged"], report
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="payloads")["Contents"]
    assert all(o["Key"].startswith("prod/risk/1/payloads-") and o["Key"].endswith(".jsonl") for o in listed)


def test_an_s3_outage_loses_no_prediction_and_no_record_once_s3_is_back(
    risk_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conveyor_home: Path
) -> None:
    """S3 is down when the files rotate: they wait in the spool (counted as spooled, not dropped) and
    are uploaded when it answers again, every record of them."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("CONVEYOR_S3_ENDPOINT_URL", endpoint)  # nobody listens, yet
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = _serve_logged(risk_folder, "s3://outage/prod", tmp_path, "--log-rotate-mib", "1")
    row = {"age": 61, "bmi": 31.5, "bp": 104, "sex": "male", "region": "north"}
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    back = False
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers = [client.post("/predict", json=[row]) for _ in range(300)]

            def spooled() -> str | None:  # the 1 s rotation hands the file to the uploader, which fails
                metrics = client.get("/metrics").text
                return metrics if _gauge(metrics, "conveyor_payload_log_spooled_records") == 300 else None

            metrics = wait_for(spooled, timeout=60, what="300 records waiting in the spool")
            assert _counter(metrics, "store_error") == 0 and _counter(metrics, "written") == 0, metrics
            s3.start()  # S3 is back
            back = True
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="outage")

            def uploaded() -> str | None:  # the next try (its wait doubles: 1 s, 2 s, 4 s ...) succeeds
                metrics = client.get("/metrics").text
                return metrics if _counter(metrics, "written") == 300 else None

            metrics = wait_for(uploaded, timeout=120, what="the spooled records uploaded once S3 answers")
        server.stop()
        assert all(a.status_code == 200 for a in answers)
        assert _gauge(metrics, "conveyor_payload_log_spooled_records") == 0 and _counter(metrics, "store_error") == 0
        bucket = boto3.client("s3", endpoint_url=endpoint)
        keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="outage")["Contents"]]
        lines = [
            line for key in keys for line in bucket.get_object(Bucket="outage", Key=key)["Body"].read().splitlines()
        ]
        assert len(lines) == 300 and {json.loads(line)["outputs"][0]["label"] for line in lines} <= {"high", "low"}
    finally:
        server.stop()
        if back:
            s3.stop()


def _gauge(metrics: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + "{"))


def test_feedback_by_request_id_gives_live_accuracy_and_a_bad_label_is_refused(
    risk_folder: Path,
    halves,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder, _, rest = halves
    frame, labels = risk_frame()
    truth = dict(zip(frame.index, labels, strict=True))
    logs = tmp_path / "logs"
    server = _serve_logged(risk_folder, logs, tmp_path)
    chosen = rest.sample(n=WINDOW, replace=True, random_state=9)
    rows, true = _records(chosen), [truth[i] for i in chosen.index]
    flipped = {"high": "low", "low": "high"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for start in range(0, len(rows), ROWS_PER_REQUEST):
            answer = client.post("/predict", json=rows[start : start + ROWS_PER_REQUEST])
            labels_now = true[start : start + ROWS_PER_REQUEST]
            if start >= len(rows) // 2:  # the second half: the world changed, the truth is the other label
                labels_now = [flipped[label] for label in labels_now]
            sent = client.post("/feedback", json=[{"request_id": answer.headers["x-request-id"], "labels": labels_now}])
            assert sent.status_code == 202 and sent.json()["accepted"] == 1, sent.text
        refused = [
            client.post("/feedback", json=[{"request_id": "x", "label": "medium"}]),
            client.post("/feedback", json=[{"label": "high"}]),
            client.post("/feedback", json=[{"request_id": "x", "label": "high", "labels": ["high"]}]),
            client.post("/feedback", content=b"not json", headers={"content-type": "application/json"}),
        ]
    server.stop()
    assert [r.status_code for r in refused] == [422, 422, 422, 400]
    assert "unknown label 'medium'" in refused[0].json()["error"] and "request_id" in refused[1].json()["error"]
    labelled = tmp_path / "live.csv"
    code, report = _monitor(
        risk_folder, logs, folder / "reference.csv", "--window", str(WINDOW // 2), "--min-accuracy", "0.6",
        "--export-labelled", str(labelled),
    )  # fmt: skip
    import pandas as pd

    exported = pd.read_csv(labelled)
    assert len(exported) == WINDOW == report["labelled_items"]
    assert {"age", "bmi", "bp", "sex", "region", "label", "request_id", "time"} <= set(exported.columns)
    assert list(exported.label[: WINDOW // 2]) == true[: WINDOW // 2]  # the truth, as feedback sent it
    first, second = (w["quality"] for w in report["windows"])
    print(f"live accuracy: {first['accuracy']:.2f} with the true labels, {second['accuracy']:.2f} after they flipped")
    assert first["labelled"] == WINDOW // 2 and first["accuracy"] >= 0.65 and second["accuracy"] <= 0.35
    assert report["feedback"] == WINDOW // ROWS_PER_REQUEST
    assert code == 1 and report["windows"][-1]["quality_failed"] and not report["windows"][0]["quality_failed"]


def test_feedback_to_a_server_without_a_payload_log_is_a_clear_409(risk_folder: Path, tmp_path: Path) -> None:
    server = start_server(risk_folder, tmp_path=tmp_path)
    answer = httpx.post(server.url + "/feedback", json=[{"request_id": "x", "label": "high"}], timeout=10)
    server.stop()
    assert answer.status_code == 409 and "--log-payloads" in answer.json()["error"]


def test_a_payload_file_rotates_by_age_under_steady_traffic(tmp_path: Path) -> None:
    """The writer is never idle for a second here, yet files finish on time: a reader (monitor, a drift
    trigger) sees traffic within --log-rotate-seconds, not only when the server goes quiet."""
    from conveyor.serving.payloads import PayloadLog, PayloadLogConfig

    log = PayloadLog(PayloadLogConfig(str(tmp_path), sample=1.0, rotate_seconds=0.3), "m", "1", logits=False,
                     classifier=True)  # fmt: skip
    deadline = time.monotonic() + 10
    try:
        while not list(tmp_path.rglob("*.jsonl")):
            assert time.monotonic() < deadline, "no file finished within 10 s of steady traffic"
            log.offer_feedback([{"request_id": "r", "labels": ["high"]}])
            time.sleep(0.05)
    finally:
        log.close()


def _gauges(metrics: str, name: str) -> dict[str, float]:
    """Samples of one metric: the label text (``{...}``) -> value."""
    found = {}
    for line in metrics.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def _wait_for_metric(server: Server, name: str, where: str, at_least: float = 1.0) -> str:
    """The /metrics text once a sample of ``name`` whose labels contain ``where`` reaches ``at_least``."""
    deadline = time.monotonic() + 15
    while True:
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        if any(where in labels and value >= at_least for labels, value in _gauges(metrics, name).items()):
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError(f"no {name} with {where} >= {at_least} within 15 s:\n{metrics}")
        time.sleep(0.1)


def test_a_server_judges_its_own_logged_traffic_as_drift_gauges_and_live_accuracy(
    risk_folder: Path,
    halves,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import shutil

    from conveyor.monitoring.observe import Observer
    from conveyor.monitoring.profile import PROFILE_FILE, profile_of
    from conveyor.serving.spec import resolve_model

    folder, _, rest = halves
    model = tmp_path / "risk"
    shutil.copytree(risk_folder, model)
    observer = Observer(resolve_model(str(model)))  # the profile registration stores with a version
    profile_of(observer.reference_columns(folder / "reference.csv"), source="reference.csv").save(model / PROFILE_FILE)
    frame, labels = risk_frame()
    truth = dict(zip(frame.index, labels, strict=True))
    blocked = tmp_path / "no-scipy"  # as in the served image: the gauges are numpy's, never scipy's or sklearn's
    blocked.mkdir()
    for module in ("scipy", "sklearn"):
        (blocked / f"{module}.py").write_text(f"raise ImportError('{module} is not in this image')\n")
    server = start_server(
        model, "--log-payloads", str(tmp_path / "logs"), "--log-sample", "1", "--log-rotate-seconds", "1",
        "--drift-window", "100", tmp_path=tmp_path, env={"PYTHONPATH": str(blocked)},
    )  # fmt: skip
    like = rest.sample(n=100, replace=True, random_state=21)
    _send(server, _records(like))
    metrics = _wait_for_metric(server, "conveyor_drift_windows_total", 'outcome="stable"')
    assert _gauges(metrics, "conveyor_drift_detected")['{column="feature.age",model="risk",version="1"}'] == 0
    older = rest[rest.age > rest.age.median()].sample(n=100, replace=True, random_state=22)
    ids = _send(server, _records(older))
    metrics = _wait_for_metric(server, "conveyor_drift_windows_total", 'outcome="drifted"')
    detected = _gauges(metrics, "conveyor_drift_detected")
    psi = _gauges(metrics, "conveyor_drift_psi")
    assert detected['{column="feature.age",model="risk",version="1"}'] == 1, detected
    assert psi['{column="feature.age",model="risk",version="1"}'] >= 0.2
    true = [truth[i] for i in older.index]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number, request_id in enumerate(ids):
            labels_now = true[number * ROWS_PER_REQUEST : (number + 1) * ROWS_PER_REQUEST]
            assert client.post("/feedback", json=[{"request_id": request_id, "labels": labels_now}]).status_code == 202
    metrics = _wait_for_metric(server, "conveyor_live_labelled_total", 'model="risk"', at_least=100)
    (accuracy,) = _gauges(metrics, "conveyor_live_accuracy").values()
    print(f"live gauges: stable window, then drift on feature.age; live accuracy {accuracy:.2f} over 100 items")
    assert 0.3 <= accuracy <= 1.0
    server.stop()


def test_a_v2_inference_is_logged_with_its_request_id(risk_folder: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    server = _serve_logged(risk_folder, logs, tmp_path)
    row = {"age": 61, "bmi": 31.5, "bp": 104, "sex": "male", "region": "north"}
    types = {"age": "FP64", "bmi": "FP64", "bp": "FP64", "sex": "BYTES", "region": "BYTES"}
    inputs = [{"name": k, "shape": [1, 1], "datatype": types[k], "data": [v]} for k, v in row.items()]
    body = {"id": "v2-own-id", "inputs": inputs}
    answer = httpx.post(server.url + "/v2/models/risk/infer", json=body, timeout=10)
    pinned = httpx.post(
        server.url + "/v2/models/risk/infer", json=body, headers={"X-Request-Id": "ticket-9"}, timeout=10
    )
    assert answer.status_code == 200 and pinned.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == "v2-own-id" and pinned.headers["x-request-id"] == "ticket-9"
    _wait_for_files(logs, 2, server)
    records = sorted((json.loads(line) for p in logs.rglob("*.jsonl") for line in p.read_text().splitlines()),
                     key=lambda r: r["request_id"])  # fmt: skip
    assert [r["request_id"] for r in records] == ["ticket-9", "v2-own-id"]
    assert all(r["route"] == "/v2/models/risk/infer" and r["inputs"][0]["age"] == 61 for r in records)
    assert records[0]["outputs"][0]["label"] == answer.json()["outputs"][0]["data"][0]


def _lines(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted(folder.rglob("*.jsonl")) for line in p.read_text().splitlines()]


def test_the_router_logs_each_backends_traffic_and_takes_feedback_for_the_version_that_answered(
    risk_folder: Path,
    halves,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from tests.rollout_fixtures import start_router

    folder, _, rest = halves
    frame, labels = risk_frame()
    truth = dict(zip(frame.index, labels, strict=True))
    started: list[Server] = []
    try:
        stable = _serve_logged(risk_folder, tmp_path / "stable-logs", tmp_path)
        started.append(stable)
        canary = _serve_logged(risk_folder, tmp_path / "canary-logs", tmp_path, "--model-version", "2")
        started.append(canary)
        backends = ["--stable", stable.url, "--stable-version", "risk:1", "--canary", canary.url]
        backends += ["--canary-version", "risk:2", "--canary-weight", "50"]
        logs = tmp_path / "router-logs"
        logged = ["--log-payloads", str(logs), "--log-sample", "1", "--log-rotate-seconds", "1"]
        logging = start_router(tmp_path, "risk", *backends, "--state-file", str(tmp_path / "a.json"), *logged)
        plain = start_router(tmp_path, "risk", *backends, "--state-file", str(tmp_path / "b.json"))
        started += [logging, plain]
        chosen = rest.sample(n=200, replace=True, random_state=31)
        rows, true = _records(chosen), [truth[i] for i in chosen.index]
        served: dict[str, str] = {}
        via: dict[str, Server] = {}
        with httpx.Client(timeout=10) as client:
            for start in range(0, len(rows), ROWS_PER_REQUEST):
                router = logging if start % 10 == 0 else plain  # every other request through each router
                answer = client.post(router.url + "/predict", json=rows[start : start + ROWS_PER_REQUEST])
                assert answer.status_code == 200, answer.text
                request_id = answer.headers["x-request-id"]
                served[request_id] = answer.headers["x-conveyor-version"]
                via[request_id] = router
                labels_now = true[start : start + ROWS_PER_REQUEST]
                sent = client.post(router.url + "/feedback", json=[{"request_id": request_id, "labels": labels_now}])
                assert sent.status_code == 202 and sent.json()["accepted"] == 1, sent.text
            known = next(i for i, router in via.items() if router is logging)
            refused = client.post(logging.url + "/feedback", json=[{"request_id": known, "label": "medium"}])
            short = client.post(logging.url + "/feedback", json=[{"request_id": known, "labels": ["high"]}])
            unknown = client.post(logging.url + "/feedback", json=[{"request_id": "never-seen", "label": "high"}])
            shapeless = client.post(logging.url + "/feedback", json=[{"request_id": 5}])
            # feedback again for a request each router served: the logging router and the backend
            # (which the plain router sends it to) agree
            twice = [
                client.post(router.url + "/feedback", json=[
                    {"request_id": again, "labels": ["high"] * ROWS_PER_REQUEST},
                    {"request_id": "never-seen", "label": "high"},
                ])
                for router, again in ((logging, known), (plain, next(i for i, r in via.items() if r is plain)))
            ]  # fmt: skip
        assert refused.status_code == 422 and "unknown label 'medium'" in refused.json()["error"]
        assert short.status_code == 422 and "labels gives 1 answer(s)" in short.json()["error"], short.text
        assert shapeless.status_code == 422 and "feedback 0: request_id" in shapeless.json()["error"]
        assert unknown.status_code == 202 and unknown.json()["accepted"] == 0 and unknown.json()["unknown"] == 1
        for answer in twice:
            assert answer.status_code == 202 and answer.json()["results"] == [
                {"request_id": answer.json()["results"][0]["request_id"], "result": "duplicate"},
                {"request_id": "never-seen", "result": "unknown"},
            ], answer.text
    finally:  # the routers, then the servers, stop (also when an assertion failed)
        for process in reversed(started):
            process.stop()
    records = _lines(logs)
    requests = [r for r in records if r["kind"] == "request"]
    assert len(requests) == 20 and {r["version"] for r in requests} == {"1", "2"}
    assert all(served[r["request_id"]] == f"risk:{r['version']}" for r in requests)  # type: ignore[index]
    assert all(r["backend"] == ("stable" if r["version"] == "1" else "canary") for r in requests)
    feedback = [r for r in records if r["kind"] == "feedback"]
    assert sorted(r["request_id"] for r in feedback) == sorted(r["request_id"] for r in requests)  # type: ignore[type-var]
    # both routers send each feedback on to the backend that answered its request
    for version in ("risk:1", "risk:2"):
        logged = _lines(tmp_path / ("stable-logs" if version == "risk:1" else "canary-logs"))
        own = {r["request_id"] for r in logged if r["kind"] == "request"}
        fed = [r["request_id"] for r in logged if r["kind"] == "feedback"]
        assert fed and set(fed) <= own, (version, fed)
        assert {i for i, router in via.items() if router is logging and served[i] == version} <= set(fed)
    _, report = _monitor(risk_folder, logs, folder / "reference.csv", "--window", "40", "--min-items", "20")
    (window,) = [w for w in report["windows"] if w["index"] == 1]
    print(f"router log: {len(requests)} requests, stable's live accuracy {window['quality']['accuracy']:.2f}")
    assert report["records"] == sum(1 for r in requests if r["version"] == "1")
    assert window["quality"]["labelled"] == window["items"] and 0.5 <= window["quality"]["accuracy"] <= 1.0
    assert window["judged"] and "output.label" in {c["name"] for c in window["columns"]}  # read from the answers


def test_feedback_joins_every_answered_request_and_says_which_were_unknown_or_duplicate(
    risk_folder: Path,
    halves,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """In-process, at a 10% sample: feedback for all 40 requests (200 rows) is accepted and joins all
    200 rows in `conveyor monitor`, through the unsampled requests' `answer` lines; sent again it is
    40 duplicates (the first label wins); an id nobody answered is unknown, per entry; a label list
    of the wrong length refuses the body (422 naming the field and both lengths)."""
    import asyncio

    from conveyor.monitoring.drift import Thresholds
    from conveyor.monitoring.run import monitor_log
    from conveyor.serving.app import create_app
    from conveyor.serving.dataplane import DataPlane, ServingOptions
    from conveyor.serving.payloads import PayloadLogConfig
    from conveyor.serving.spec import resolve_model

    folder, _, rest = halves
    frame, labels = risk_frame()
    truth = dict(zip(frame.index, labels, strict=True))
    chosen = rest.sample(n=WINDOW, replace=True, random_state=41)
    rows, true = _records(chosen), [truth[i] for i in chosen.index]
    logs = tmp_path / "logs"
    resolved = resolve_model(str(risk_folder))
    plane = DataPlane(resolved, ServingOptions(payload_log=PayloadLogConfig(str(logs), sample=0.1)))

    async def traffic() -> list[httpx.Response]:
        await plane.load()
        assert plane.payloads is not None
        plane.payloads._random.seed(2)  # 5 of the 40 sampled; unseeded, 1.5% of runs logged no request whole
        transport = httpx.ASGITransport(app=create_app(plane))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
                ids = []
                for start in range(0, len(rows), ROWS_PER_REQUEST):
                    answer = await client.post("/predict", json=rows[start : start + ROWS_PER_REQUEST])
                    ids.append(answer.headers["x-request-id"])
                feedback = [
                    {"request_id": request_id, "labels": true[n * ROWS_PER_REQUEST : (n + 1) * ROWS_PER_REQUEST]}
                    for n, request_id in enumerate(ids)
                ]
                return [
                    await client.post("/feedback", json=feedback),
                    await client.post("/feedback", json=feedback),  # again: every one a duplicate
                    await client.post(
                        "/feedback", json=[feedback[0], {"request_id": "never-answered", "label": "high"}]
                    ),
                    await client.post("/feedback", json=[{"request_id": ids[1], "labels": ["high", "low"]}]),
                ]
        finally:
            await plane.close()

    first, again, mixed, short = asyncio.run(traffic())
    assert first.status_code == 202 and {k: v for k, v in first.json().items() if k != "results"} == {
        "accepted": 40, "duplicate": 0, "unknown": 0, "dropped": 0,
    }, first.text  # fmt: skip
    assert again.json()["duplicate"] == 40 and again.json()["accepted"] == 0
    assert mixed.json()["results"] == [
        {"request_id": first.json()["results"][0]["request_id"], "result": "duplicate"},
        {"request_id": "never-answered", "result": "unknown"},
    ]
    assert mixed.json()["accepted"] == 0 and mixed.json()["unknown"] == 1
    assert short.status_code == 422, short.text
    assert "labels gives 2 answer(s)" in short.json()["error"] and "answered 5 item(s)" in short.json()["error"]
    lines = _lines(logs)
    kinds = {kind: sum(1 for r in lines if r["kind"] == kind) for kind in ("request", "answer", "feedback")}
    assert kinds["request"] + kinds["answer"] == 40 and kinds["feedback"] == 40, kinds  # duplicates not written
    result = monitor_log(resolved, str(logs), folder / "reference.csv", WINDOW, Thresholds(min_items=1))
    labelled = sum(w.quality["labelled"] for w in result.windows if w.quality)
    print(f"10% sample: {kinds['request']} requests logged whole, {kinds['answer']} as answer lines, {labelled} rows")
    assert labelled == WINDOW and result.feedback == 40
