"""conveyor rollout export: the manifests validate against the Kubernetes, Argo Rollouts and Gateway API schemas."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conveyor.errors import InvalidInput
from conveyor.generative.app import create_app as create_generation_app
from conveyor.rollout.service import ExportRequest, export
from conveyor.serving import metrics
from conveyor.serving.app import create_app
from conveyor.serving.dataplane import DataPlane, ServingOptions
from conveyor.serving.spec import resolve_model
from tests.conftest import REPO
from tests.machine import missing, tool
from tests.registry_fixtures import run_cli

K8S = REPO / "tests" / "k8s"
KUBERNETES_VERSION = "1.30"


def exported(*args: str) -> list[dict]:
    result = run_cli("rollout", "export", "--image", "registry.example/sentiment:2", "--name", "sentiment", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def exported_here(image: str = "registry.example/sentiment:2", **request: Any) -> list[dict]:
    """The same documents from the command's use-case in this process (a CLI start costs seconds)."""
    return [doc for doc in yaml.safe_load_all(export(ExportRequest(image, name="sentiment", **request))) if doc]


def validate_argo(documents: list[dict]) -> list[dict]:
    tool("node")
    if not (K8S / "node_modules").exists():
        missing("tests/k8s/node_modules is missing (make test installs it: npm ci --prefix tests/k8s)")
    lines = "".join(json.dumps(doc) + "\n" for doc in documents)
    result = subprocess.run(
        ["node", "validate-argo.mjs"], input=lines, capture_output=True, text=True, cwd=K8S, check=True
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_argo_rollout_and_analysis_template_validate_and_keep_the_strategy() -> None:
    docs = exported(
        "--format", "argo-rollouts", "--steps", "10,25,50,100", "--interval", "45s",
        "--contract", "examples/sentiment/contract.yaml", "--prometheus", "http://prometheus.example:9090",
    )  # fmt: skip
    kinds = [doc["kind"] for doc in docs]
    assert kinds == ["ConfigMap", "Service", "Service", "PodMonitor", "AnalysisTemplate", "Rollout"]
    for doc in docs:
        if doc["apiVersion"] == "v1":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    results = validate_argo([d for d in docs if d["kind"] in ("PodMonitor", "AnalysisTemplate", "Rollout")])
    assert all(r["ok"] for r in results) and len(results) == 3, results
    rollout = docs[-1]
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 25, 50, 100]
    assert {s["pause"]["duration"] for s in steps if "pause" in s} == {"45s"}
    template = docs[4]["spec"]["metrics"]
    prometheus = [m for m in template if "prometheus" in m["provider"]]
    assert {m["provider"]["prometheus"]["address"] for m in prometheus} == {"http://prometheus.example:9090"}
    queries = " ".join(m["provider"]["prometheus"]["query"] for m in prometheus)
    assert f"{metrics.REQUESTS._name}_total" in queries  # the server's own metric names
    assert any("job" in m["provider"] for m in template)  # the contract checks as an analysis Job
    # the PodMonitor scrapes the rollout's pods and keeps the label the queries select them by
    monitor = docs[3]["spec"]
    assert monitor["selector"]["matchLabels"] == rollout["spec"]["selector"]["matchLabels"]
    assert monitor["podTargetLabels"] == ["rollouts-pod-template-hash"] and "rollouts_pod_template_hash=" in queries


def test_every_route_that_takes_a_body_is_a_counted_prediction_route_or_named_here(vote_model: Path) -> None:
    """A new prediction route (MLflow's ``/invocations``, say, or a generative version's OpenAI routes) must join
    ``PREDICTION_ROUTES``, or the exported analysis would not count its requests and would find a canary
    answering only there idle."""
    from conveyor.generative import app as generative
    from conveyor.generative.config import GenerationConfig
    from conveyor.generative.engine import Engine

    server = create_app(DataPlane(resolve_model(vote_model), ServingOptions()))
    chat = generative.create_app(Engine(vote_model / "model.gguf", GenerationConfig()), "chat", "1")  # not loaded
    routes = [*server.app.routes, *chat.routes]
    posts = {route.path for route in routes if "POST" in (getattr(route, "methods", None) or ())}
    not_predictions = {"/feedback", "/v2/repository/index"}
    generative = create_generation_app(None, "chat", "1")  # type: ignore[arg-type]  # its routes only
    generations = {route.path for route in generative.routes if "POST" in (getattr(route, "methods", None) or ())}
    # /predict: raw ASGI
    assert posts | {"/predict"} | generations == set(metrics.PREDICTION_ROUTES) | not_predictions


def test_the_analysis_counts_prediction_requests_only_and_never_indexes_an_empty_result() -> None:
    """Probes and scrapes reach the same counters: every count of requests is of prediction routes, and
    each condition guards ``result[0]`` (Argo counts an index into an empty vector as a measurement error)."""
    [template] = [d for d in exported_here(thresholds={"max_p99_ms": 300}) if d["kind"] == "AnalysisTemplate"]
    for metric in template["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        counted = re.findall(r"conveyor_request(?:s_total|_duration_seconds_\w+)\{(.*?)\}\[", query)
        assert counted and all('route=~"/predict|' in m and 'method="POST"' in m for m in counted), query
        for condition in (metric["successCondition"], metric["failureCondition"]):
            assert condition.startswith(("len(result) == 0 ||", "len(result) > 0 &&")), condition
    assert [m["name"] for m in template["spec"]["metrics"]] == [
        "error-rate",
        "error-rate-increase",
        "p99-latency",
        "p99-ratio",
    ]


def test_the_argo_validator_rejects_a_broken_rollout() -> None:
    broken = exported("--format", "argo-rollouts")[-1]
    broken["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "ten"
    [result] = validate_argo([broken])
    assert result["ok"] is False and "setWeight" in result["error"]


def test_gateway_api_export_moves_an_http_route_and_mirrors_prediction_requests() -> None:
    """The Argo Rollouts Gateway API plugin's shape: the route the plugin edits, and a mirror rule
    (the Gateway API RequestMirror filter) for the mirrored-agreement analysis, all schema-valid."""
    docs = exported("--format", "gateway-api", "--gateway", "public", "--steps", "10,50,100", "--mirror-percent", "20")
    assert [d["kind"] for d in docs] == ["Service", "Service", "PodMonitor", "AnalysisTemplate", "Rollout", "HTTPRoute"]
    results = validate_argo([d for d in docs if d["kind"] != "Service"])
    assert all(r["ok"] for r in results), results
    # the Gateway's RequestMirror copies requests but compares nothing: agreement needs Conveyor's router
    assert "mirrored-agreement" not in [m["name"] for m in docs[3]["spec"]["metrics"]]
    with_router = exported_here(format="gateway-api", router_job="votes-router")[3]["spec"]["metrics"]
    [agreement] = [m for m in with_router if m["name"] == "mirrored-agreement"]
    assert 'job="votes-router",backend="canary"' in agreement["provider"]["prometheus"]["query"]
    canary = docs[4]["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"]["plugins"] == {"argoproj-labs/gatewayAPI": {"httpRoute": "sentiment-route"}}
    assert canary["trafficRouting"]["managedRoutes"] == [{"name": "conveyor-mirror"}]
    mirror = canary["steps"][0]["setMirrorRoute"]
    assert (
        mirror["percentage"] == 20 and {"method": {"exact": "POST"}, "path": {"exact": "/predict"}} in mirror["match"]
    )
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [10, 50, 100]
    route = docs[5]["spec"]
    assert route["parentRefs"][0]["name"] == "public"
    weights = {b["name"]: b["weight"] for b in route["rules"][0]["backendRefs"]}
    assert weights == {"sentiment-stable": 100, "sentiment-canary": 0}  # the plugin moves them
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert set(weights) == services
    unmirrored = exported_here(format="gateway-api", thresholds={"mirror_percent": 0})[4]["spec"]["strategy"]["canary"]
    assert "managedRoutes" not in unmirrored["trafficRouting"] and "setMirrorRoute" not in unmirrored["steps"][0]
    broken = docs[5]
    broken["spec"]["rules"][0]["backendRefs"][0]["weight"] = -5
    [result] = validate_argo([broken])
    assert result["ok"] is False and "weight" in result["error"]


def kserve_problems(doc: dict[str, Any]) -> list[str]:
    """``doc`` against KServe's published CRD schema (tests/k8s/kserve, v0.20.0): the schema's own rules, and
    no field the schema does not declare (the API server would drop it; ``kubectl --validate=strict`` refuses)."""
    version = doc["apiVersion"].split("/")[1]
    path = K8S / "kserve" / f"serving.kserve.io_{version}_{doc['kind']}.json.gz"
    schema = json.loads(gzip.decompress(path.read_bytes()))
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]

    def unknown(node: Any, part: dict[str, Any], where: str) -> None:
        if isinstance(node, list) and "items" in part:
            for index, item in enumerate(node):
                unknown(item, part["items"], f"{where}[{index}]")
        if not isinstance(node, dict) or part.get("x-kubernetes-preserve-unknown-fields") or "properties" not in part:
            return
        for key, value in node.items():
            if key not in part["properties"]:
                problems.append(f"{where}.{key}: not in the schema")
            elif where or key != "metadata":  # the API server checks metadata itself
                unknown(value, part["properties"][key], f"{where}.{key}")

    unknown(doc, schema, "")
    return problems


def test_kserve_serving_runtime_and_inference_service_fetch_the_model_by_digest_and_validate() -> None:
    """Conveyor's server as a KServe ServingRuntime, and an InferenceService whose storageUri holds the model
    folder, checked against the version digest before it is served; both valid under KServe's CRD schema."""
    digest = "sha256:" + "b" * 64
    result = run_cli("rollout", "export", "--image", "r/s@sha256:" + "c" * 64, "--name", "sentiment", "--format",
                     "kserve", "--steps", "20,60,100", "--storage-uri", "s3://models/sentiment/2",
                     "--model-digest", digest)  # fmt: skip
    assert result.returncode == 0, result.stderr
    runtime, monitor, service = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert (runtime["kind"], monitor["kind"], service["kind"]) == ("ServingRuntime", "PodMonitor", "InferenceService")
    assert kserve_problems(runtime) == [] and kserve_problems(service) == []
    assert validate_argo([monitor]) == [{"kind": "PodMonitor", "ok": True}]
    # it scrapes the predictor's serving port, and keeps the revision a canary query selects
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == runtime["spec"]["containers"][0]["ports"][0]["name"]
    assert "serving.knative.dev/revision" in monitor["spec"]["podTargetLabels"]
    [container] = runtime["spec"]["containers"]
    assert container["args"][0] == "/mnt/models" and "{{.Name}}" in container["args"]  # KServe fills the name
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["storageUri"] == "s3://models/sentiment/2"
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert {"name": "CONVEYOR_SERVE_EXPECT_DIGEST", "value": "b" * 64} in model["env"]
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert '"canaryTrafficPercent":60' in result.stdout and '"canaryTrafficPercent":100' in result.stdout
    # the validation has teeth: a misspelt field and a wrong type are both found
    broken = json.loads(json.dumps(service))
    broken["spec"]["predictor"]["model"]["storageURI"] = broken["spec"]["predictor"]["model"].pop("storageUri")
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "twenty"
    found = " ".join(kserve_problems(broken))
    assert "storageURI: not in the schema" in found and "canaryTrafficPercent" in found
    unpinned = export(ExportRequest("r/s:2", format="kserve", storage_uri="pvc://models/sentiment"))
    assert "# warning: no --model-digest" in unpinned
    with pytest.raises(InvalidInput, match="--storage-uri"):
        export(ExportRequest("r/s:2", format="kserve"))


def test_the_kubernetes_format_is_a_valid_deployment_and_service_pinned_by_digest() -> None:
    image = "127.0.0.1:5000/votes@sha256:" + "a" * 64
    result = run_cli("rollout", "export", "--image", image, "--name", "votes", "--format", "kubernetes",
                     "--replicas", "3", "--host-port", "18080")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "not pinned by digest" not in result.stdout
    deployment, service = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for doc in (deployment, service):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert (deployment["kind"], deployment["spec"]["replicas"]) == ("Deployment", 3)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image and container["ports"][0]["hostPort"] == 18080
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] == {"app": "votes"}
    tagged = run_cli("rollout", "export", "--image", "votes:2", "--format", "kubernetes")
    assert "# warning: the image is not pinned by digest" in tagged.stdout


def test_export_rejects_an_unknown_format_with_a_usage_error() -> None:
    result = run_cli("rollout", "export", "--image", "x", "--format", "helm")
    assert result.returncode == 2 and "argo-rollouts, gateway-api, kserve or kubernetes" in result.stderr
