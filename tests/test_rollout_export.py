"""conveyor rollout export: the manifests validate against the Kubernetes, Argo Rollouts and Gateway API schemas."""

from __future__ import annotations

import json
import subprocess

import kubernetes_validate
import yaml

from conveyor.serving import metrics
from tests.conftest import REPO
from tests.machine import missing, tool
from tests.registry_fixtures import run_cli

K8S = REPO / "tests" / "k8s"
KUBERNETES_VERSION = "1.30"


def exported(*args: str) -> list[dict]:
    result = run_cli("rollout", "export", "--image", "registry.example/sentiment:2", "--name", "sentiment", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


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
        "--contract", "examples/sentiment/contract.yaml",
    )  # fmt: skip
    kinds = [doc["kind"] for doc in docs]
    assert kinds == ["ConfigMap", "Service", "Service", "AnalysisTemplate", "Rollout"]
    for doc in docs:
        if doc["apiVersion"] == "v1":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    results = validate_argo([d for d in docs if d["apiVersion"].startswith("argoproj.io")])
    assert results == [{"kind": "AnalysisTemplate", "ok": True}, {"kind": "Rollout", "ok": True}]
    rollout = docs[-1]
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 25, 50, 100]
    assert {s["pause"]["duration"] for s in steps if "pause" in s} == {"45s"}
    template = docs[3]["spec"]["metrics"]
    queries = " ".join(m["provider"].get("prometheus", {}).get("query", "") for m in template)
    assert f"{metrics.REQUESTS._name}_total" in queries  # the server's own metric names
    assert any("job" in m["provider"] for m in template)  # the contract checks as an analysis Job


def test_the_argo_validator_rejects_a_broken_rollout() -> None:
    broken = exported("--format", "argo-rollouts")[-1]
    broken["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "ten"
    [result] = validate_argo([broken])
    assert result["ok"] is False and "setWeight" in result["error"]


def test_gateway_api_export_moves_an_http_route_and_mirrors_prediction_requests() -> None:
    """The Argo Rollouts Gateway API plugin's shape: the route the plugin edits, and a mirror rule
    (the Gateway API RequestMirror filter) for the mirrored-agreement analysis, all schema-valid."""
    docs = exported("--format", "gateway-api", "--gateway", "public", "--steps", "10,50,100", "--mirror-percent", "20")
    assert [d["kind"] for d in docs] == ["Service", "Service", "AnalysisTemplate", "Rollout", "HTTPRoute"]
    results = validate_argo([d for d in docs if d["kind"] in ("AnalysisTemplate", "Rollout", "HTTPRoute")])
    assert all(r["ok"] for r in results), results
    canary = docs[3]["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"]["plugins"] == {"argoproj-labs/gatewayAPI": {"httpRoute": "sentiment-route"}}
    assert canary["trafficRouting"]["managedRoutes"] == [{"name": "conveyor-mirror"}]
    mirror = canary["steps"][0]["setMirrorRoute"]
    assert (
        mirror["percentage"] == 20 and {"method": {"exact": "POST"}, "path": {"exact": "/predict"}} in mirror["match"]
    )
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [10, 50, 100]
    route = docs[4]["spec"]
    assert route["parentRefs"][0]["name"] == "public"
    weights = {b["name"]: b["weight"] for b in route["rules"][0]["backendRefs"]}
    assert weights == {"sentiment-stable": 100, "sentiment-canary": 0}  # the plugin moves them
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert set(weights) == services
    unmirrored = exported("--format", "gateway-api", "--mirror-percent", "0")[3]["spec"]["strategy"]["canary"]
    assert "managedRoutes" not in unmirrored["trafficRouting"] and "setMirrorRoute" not in unmirrored["steps"][0]
    broken = docs[4]
    broken["spec"]["rules"][0]["backendRefs"][0]["weight"] = -5
    [result] = validate_argo([broken])
    assert result["ok"] is False and "weight" in result["error"]


def test_kserve_inference_service_carries_the_first_step_and_a_valid_pod_spec() -> None:
    result = run_cli("rollout", "export", "--image", "r/s:2", "--name", "sentiment", "--format", "kserve",
                     "--steps", "20,60,100")  # fmt: skip
    assert result.returncode == 0
    [service] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert service["apiVersion"] == "serving.kserve.io/v1beta1" and service["kind"] == "InferenceService"
    predictor = service["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    assert '"canaryTrafficPercent":60' in result.stdout and '"canaryTrafficPercent":100' in result.stdout
    # KServe's CRD schema is not published in a form we can install offline: its pod part is checked
    # against Kubernetes' own schema, the rest by the assertions above.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": predictor["containers"]},
    }
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


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
