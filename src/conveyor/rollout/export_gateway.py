"""The rollout as Argo Rollouts over the Kubernetes Gateway API: an HTTPRoute whose weights move, and mirroring.

``--format gateway-api`` writes what ``--format argo-rollouts`` writes (the Rollout with its steps,
the stable and canary Services, the AnalysisTemplate) with the traffic moved by the Argo Rollouts
Gateway API plugin (``argoproj-labs/gatewayAPI``) on an ``HTTPRoute`` instead of by replica counts,
so a 10% step is 10% of requests whatever the number of pods.  When the rollout mirrors
(``mirror_percent``), the first step is a ``setMirrorRoute``: that share of the prediction
requests is copied to the canary for the whole canary, as Conveyor's router does (the plugin adds
a rule with the Gateway API ``RequestMirror`` filter to the route, and removes it when the
rollout ends).  The Gateway copies the requests but compares nothing: mirrored agreement is judged
in the cluster only where Conveyor's router mirrors in front of the pods (``--router-job``;
docs/rollouts.md says which metrics travel).
"""

from __future__ import annotations

from typing import Any

from conveyor.rollout.analysis.thresholds import Thresholds
from conveyor.rollout.export import PROMETHEUS, argo_documents, dump

PLUGIN = "argoproj-labs/gatewayAPI"
MIRROR_ROUTE = "conveyor-mirror"
# the requests that carry predictions: the classic route and the Open Inference Protocol's infer
PREDICTION_MATCHES = [
    {"method": {"exact": "POST"}, "path": {"exact": "/predict"}},
    {"method": {"exact": "POST"}, "path": {"prefix": "/v2/models/"}},
]


def http_route(name: str, gateway: str) -> dict[str, Any]:
    """The route the plugin edits: every request to stable (weight 100) until the rollout moves it."""
    backends = [
        {"group": "", "kind": "Service", "name": f"{name}-stable", "port": 80, "weight": 100},
        {"group": "", "kind": "Service", "name": f"{name}-canary", "port": 80, "weight": 0},
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"{name}-route", "labels": {"app": name}},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backends}],
        },
    }


def gateway_documents(
    name: str,
    image: str,
    steps: list[float],
    interval_s: float,
    limits: Thresholds,
    contract: str | None,
    gateway: str,
    prometheus: str = PROMETHEUS,
    router_job: str | None = None,
) -> list[dict[str, Any]]:
    documents = argo_documents(name, image, steps, interval_s, limits, contract, prometheus, router_job)
    rollout = next(doc for doc in documents if doc["kind"] == "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    canary["trafficRouting"] = {"plugins": {PLUGIN: {"httpRoute": f"{name}-route"}}}
    if limits.mirror_percent > 0:  # copies of stable's prediction requests for the whole canary, as here
        canary["trafficRouting"]["managedRoutes"] = [{"name": MIRROR_ROUTE}]  # removed when the rollout ends
        mirrored = {"name": MIRROR_ROUTE, "percentage": round(limits.mirror_percent), "match": PREDICTION_MATCHES}
        canary["steps"] = [{"setMirrorRoute": mirrored}, *canary["steps"]]
    return [*documents, http_route(name, gateway)]


def export_gateway_api(
    name: str,
    image: str,
    steps: list[float],
    interval_s: float,
    limits: Thresholds,
    contract: str | None,
    gateway: str,
    prometheus: str = PROMETHEUS,
    router_job: str | None = None,
) -> str:
    header = (
        f"# Argo Rollouts canary for {name} over the Gateway API (HTTPRoute {name}-route on Gateway {gateway}):\n"
        "# written by `conveyor rollout export --format gateway-api`. Needs Argo Rollouts with the\n"
        f"# {PLUGIN} traffic router plugin, and a Gateway API implementation (RequestMirror for mirroring).\n"
    )
    documents = gateway_documents(name, image, steps, interval_s, limits, contract, gateway, prometheus, router_job)
    return dump(documents, header)
