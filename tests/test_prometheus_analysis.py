"""The exported Argo Rollouts analysis, judged by a real Prometheus scraping real servers and a real router.

Debian's ``prometheus`` on 127.0.0.1 scrapes two ``conveyor serve`` processes (stable, and a canary whose
model answers as stable does until a text holds a word its graph fails on) under the pod-template-hash
labels a PodMonitor gives pods, and a ``conveyor router`` that sends live traffic to stable and mirrors
every prediction to the canary.  The queries of ``conveyor rollout export --format argo-rollouts`` go
through Prometheus' HTTP API as Argo Rollouts sends them (``{{args.*}}`` filled in) and their results are
judged by the metrics' own success and failure conditions as Argo evaluates them (``utils/evaluate``:
failure wins; neither is inconclusive; a condition that cannot be evaluated is an error).  Three windows of
one canary: idle (readiness probes, health checks and scrapes only) is inconclusive, after mirrored
traffic it passes, after texts that break its model it fails.  The PromQL blocks of docs/rollouts.md
return the series they name.

What only a cluster proves: that Argo Rollouts schedules these measurements and a PodMonitor's scrape gives
pods these labels (the PodMonitor itself is schema-checked in test_rollout_export.py).
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conveyor.rollout.service import ExportRequest, export
from tests import models
from tests.conftest import REPO, Server, free_port, start_server, wait_until_ready
from tests.machine import tool
from tests.rollout_fixtures import Proc, admin, wait_for

HASHES = {"stable": "st4bl3", "canary": "c4n4ry"}
ARGS = {"canary-hash": HASHES["canary"], "stable-hash": HASHES["stable"]}
CANARY = f'rollouts_pod_template_hash="{HASHES["canary"]}"'
ROUTER_JOB = "conveyor-router"
# the laptop's rules at a small scale; p99 is judged only above 2 s: two busy cores serve these, and one
# stall makes the p99 of 60 samples
THRESHOLDS = {
    "min_requests": 20,
    "min_compared": 20,
    "max_p99_ms": 5000,
    "p99_floor_ms": 2000,
    "max_prediction_shift": 0.3,
}
TEXTS = ["good great day", "bad awful food", "good day", "awful day", "great"]


def exported_template(router_job: str | None = None) -> dict[str, Any]:
    """The AnalysisTemplate ``conveyor rollout export`` writes (the command's own use-case, in this process)."""
    request = ExportRequest("r/votes:2", name="votes", interval="30s", thresholds=THRESHOLDS, router_job=router_job)
    [template] = [d for d in yaml.safe_load_all(export(request)) if d and d["kind"] == "AnalysisTemplate"]
    return template


class Prometheus:
    """A Prometheus process of its own: a short scrape interval, its data in a temporary folder."""

    def __init__(self, tmp: Path, jobs: dict[str, list[tuple[str, dict[str, str]]]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "250ms", "scrape_timeout": "200ms"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [t], "labels": labels} for t, labels in targets]}
                for job, targets in jobs.items()
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def ready() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 30, "prometheus to be ready")

    def query(self, promql: str, at: float) -> list[float]:
        """The values of the instant vector ``promql`` at ``at``, as Argo's Prometheus provider reads them."""
        answer = httpx.get(self.url + "/api/v1/query", params={"query": promql, "time": at}, timeout=10).json()
        assert answer["status"] == "success", (promql, answer)
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        assert data["resultType"] == "vector", data
        return [float(sample["value"][1]) for sample in data["result"]]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def condition(expression: str, result: list[float]) -> bool:
    """An Argo condition of the exported shape (``len``, ``result[i]``, comparisons, ``&&``, ``||``)."""
    assert re.fullmatch(r"[\w\s\[\]().<>=!&|]+", expression), expression
    python = expression.replace("&&", " and ").replace("||", " or ")
    return bool(eval(python, {"__builtins__": {}}, {"result": result, "len": len}))


def measure(metric: dict[str, Any], result: list[float]) -> str:
    """Argo Rollouts' ``EvaluateResult``: failure wins; neither condition holding is inconclusive."""
    try:
        failed = condition(metric["failureCondition"], result)
        succeeded = condition(metric["successCondition"], result)
    except (IndexError, TypeError):
        return "Error"
    return "Failed" if failed else "Successful" if succeeded else "Inconclusive"


def judge(prometheus: Prometheus, template: dict[str, Any], args: dict[str, str], at: float) -> dict[str, str]:
    """Each Prometheus metric's phase, ``{{args.*}}`` filled in as Argo Rollouts does."""
    phases = {}
    for metric in template["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        for name, value in args.items():
            query = query.replace("{{args." + name + "}}", value)
        phases[metric["name"]] = measure(metric, prometheus.query(query, at))
    return phases


def verdict(phases: dict[str, str]) -> str:
    """The analysis' outcome: failed if any metric failed, else inconclusive if any was, else successful."""
    for outcome in ("Failed", "Error", "Inconclusive"):
        if outcome in phases.values():
            return outcome
    return "Successful"


def scraped(prometheus: Prometheus, server: Server, selector: str) -> None:
    """Wait until Prometheus holds the server's own latest count of prediction requests."""

    def own() -> float:
        text = httpx.get(server.url + "/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("conveyor_requests_total{") and 'route="/predict"' in line
        )

    expected = own()

    def caught_up() -> bool:
        seen = prometheus.query(f'sum(conveyor_requests_total{{{selector},route="/predict"}})', time.time())
        return bool(seen) and seen[0] >= expected

    wait_for(caught_up, 20, f"prometheus to scrape {expected:g} predictions from {server.url}")


@pytest.fixture
def fleet(vote_model: Path, model_root: Path, router: Proc, tmp_path: Path) -> Iterator[dict[str, Any]]:
    breaking = models.model_dir(model_root / "failing-vote", "votes", models.failing_vote_model, max_length=16)
    servers = {
        "stable": start_server(vote_model, tmp_path=tmp_path, wait_ready=False),
        "canary": start_server(breaking, "--model-version", "2", tmp_path=tmp_path, wait_ready=False),
    }
    jobs = {
        "conveyor": [
            (server.url.removeprefix("http://"), {"rollouts_pod_template_hash": HASHES[role]})
            for role, server in servers.items()
        ],
        ROUTER_JOB: [(router.url.removeprefix("http://"), {})],
    }
    prometheus = Prometheus(tmp_path, jobs)  # scraping while the servers start, as a cluster's would
    try:
        for server in servers.values():
            wait_until_ready(server)
        table = {
            "backends": [
                {"name": "stable", "url": servers["stable"].url, "version": "votes:1", "weight": 100},
                {"name": "canary", "url": servers["canary"].url, "version": "votes:2", "weight": 0},
            ],
            "mirror_percent": 100,
            "mirror_to": "canary",
        }
        put = httpx.put(router.url + "/_conveyor/routes", json=table, headers=admin(router.url), timeout=5)
        assert put.status_code == 200, put.text
        yield {"prometheus": prometheus, "router": router, **servers}
    finally:
        prometheus.stop()
        for server in servers.values():
            server.stop()


def predict(url: str, texts: list[str], count: int, spread_s: float) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for index in range(count):
            text = texts[index % len(texts)]
            if index % 4 == 3:  # the Open Inference Protocol's route counts as a prediction too
                body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
                client.post("/v2/models/votes/infer", json=body)
            else:
                client.post("/predict", json=[text])
            time.sleep(spread_s / count)


def test_the_exported_analysis_finds_an_idle_canary_inconclusive_a_good_one_passed_a_failing_one_failed(
    fleet: dict[str, Any],
) -> None:
    prometheus: Prometheus = fleet["prometheus"]
    template = exported_template(ROUTER_JOB)
    names = [m["name"] for m in template["spec"]["metrics"]]
    assert names == ["error-rate", "error-rate-increase", "p99-latency", "p99-ratio", "mirrored-agreement",
                     "prediction-shift"]  # fmt: skip
    without_router = exported_template()  # a Gateway mirrors but nothing compares: no agreement metric
    assert "mirrored-agreement" not in [m["name"] for m in without_router["spec"]["metrics"]]

    # idle: readiness probes (as a kubelet sends them), the router's health checks and the scrapes only
    with httpx.Client(base_url=fleet["canary"].url, timeout=5) as client:
        for _ in range(30):
            client.get("/v2/health/ready")

    def counted_everything() -> bool:
        seen = prometheus.query(f"sum(increase(conveyor_requests_total{{{CANARY}}}[60s]))", time.time())
        return bool(seen) and seen[0] >= 20

    wait_for(counted_everything, 20, "prometheus to count 20 probes and scrapes")
    idle = judge(prometheus, template, ARGS, time.time())
    assert verdict(idle) == "Inconclusive", idle
    assert idle["error-rate"] == idle["mirrored-agreement"] == idle["prediction-shift"] == "Inconclusive", idle

    # stable answers live traffic and the router mirrors every prediction to the canary
    predict(fleet["router"].url, TEXTS, 60, 2.0)
    scraped(prometheus, fleet["canary"], CANARY)
    passed_at = time.time()
    passed = judge(prometheus, template, ARGS, passed_at)
    assert verdict(passed) == "Successful", passed

    # then texts with the word the canary's graph fails on: server errors, which stable does not give
    predict(fleet["router"].url, ["spam today", *TEXTS[:2]], 30, 1.0)
    scraped(prometheus, fleet["canary"], CANARY)
    failed = judge(prometheus, template, ARGS, time.time())
    assert verdict(failed) == "Failed" and failed["error-rate"] == failed["error-rate-increase"] == "Failed", failed

    # every exported query names series that exist
    queries = [m["provider"]["prometheus"]["query"] for m in template["spec"]["metrics"]]
    named = {name for query in queries for name in re.findall(r"\b(conveyor_\w+)\{", query)}
    assert named == {
        "conveyor_requests_total", "conveyor_request_duration_seconds_bucket",
        "conveyor_request_duration_seconds_count", "conveyor_predictions_total",
        "conveyor_router_mirror_comparisons_total",
    }  # fmt: skip
    for name in named:
        assert prometheus.query(f"count({name})", passed_at), f"{name} has no series"

    # the documented queries return the series they name, with the fleet's labels
    documented = re.findall(r"^```promql\n(.*?)^```", (REPO / "docs" / "rollouts.md").read_text(), re.S | re.M)
    assert len(documented) >= 5
    for block in documented:
        query = block.replace('job="sentiment-router"', f'job="{ROUTER_JOB}"')
        for name, value in ARGS.items():
            query = query.replace("{{args." + name + "}}", value)
        values = prometheus.query(query, passed_at)
        assert values and not any(math.isnan(v) for v in values), (block, values)
