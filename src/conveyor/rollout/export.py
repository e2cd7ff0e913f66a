"""Kubernetes manifests for the same rollout strategy, for clusters: Argo Rollouts and KServe
(and, in ``export_gateway.py``, Argo Rollouts moving a Gateway API HTTPRoute), and the plain
Deployment and Service those start from.

Argo Rollouts gets the canary steps as setWeight/pause pairs and a background
analysis made of each analysis metric's Argo counterpart (``Metric.argo``: Prometheus
queries on the model server's own counters of prediction requests, ``rollout/promql.py``;
a Job running ``conveyor verify`` against the canary Service), and a prometheus-operator
``PodMonitor`` that scrapes the pods with the label the queries select them by.  KServe gets a
``ServingRuntime`` running Conveyor's server and an ``InferenceService`` whose ``storageUri`` holds
the model files (checked against the version digest when the server starts) with
``canaryTrafficPercent``; KServe itself promotes or rolls back a percentage, so the export is the
first step and the commands for the next ones.
"""

from __future__ import annotations

from typing import Any

import yaml

from conveyor.rollout.analysis.metric import ArgoContext
from conveyor.rollout.analysis.thresholds import Thresholds, all_metrics

PORT = 5000
#: where Argo Rollouts asks Prometheus by default (``--prometheus``): kube-prometheus-stack's service in ``monitoring``
PROMETHEUS = "http://prometheus-operated.monitoring:9090"
#: the pod label Argo Rollouts gives each ReplicaSet's pods, and the Prometheus label the PodMonitor turns it into
HASH_LABEL = "rollouts-pod-template-hash"
# Prometheus sees the server's metrics with the pod's template hash (the PodMonitor's podTargetLabels, or a
# scrape config that keeps pod labels); Argo Rollouts passes the canary's and stable's to the analysis.
CANARY = 'rollouts_pod_template_hash="{{args.canary-hash}}"'
STABLE = 'rollouts_pod_template_hash="{{args.stable-hash}}"'


def _container(name: str, image: str) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/v2/health/ready", "port": PORT}, "periodSeconds": 5}
    return {
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": PORT}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }


def _service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def pod_monitor(
    name: str, selector: dict[str, str], target_labels: list[str], interval: str, port: str = "http"
) -> dict[str, Any]:
    """A prometheus-operator PodMonitor for the model server's ``/metrics`` on the pods ``selector`` picks."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": selector},
            "podTargetLabels": target_labels,
            "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": interval}],
        },
    }


def argo_documents(
    name: str,
    image: str,
    steps: list[float],
    interval_s: float,
    limits: Thresholds,
    contract: str | None,
    prometheus: str = PROMETHEUS,
    router_job: str | None = None,
) -> list[dict[str, Any]]:
    pause = f"{max(1, round(interval_s))}s"
    canary_steps: list[dict[str, Any]] = []
    for weight in steps:
        canary_steps.append({"setWeight": round(weight)})
        if weight < 100:
            canary_steps.append({"pause": {"duration": pause}})
    window = f"{max(60, round(interval_s * 2))}s"
    ctx = ArgoContext(
        name=name,
        image=image,
        interval=pause,
        window=window,
        canary=CANARY,
        stable=STABLE,
        prometheus=prometheus,
        contract=contract is not None,
        router_job=router_job,
    )
    metrics = [doc for item in all_metrics() for doc in item.argo(limits, ctx)]
    documents: list[dict[str, Any]] = []
    if contract is not None:
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-contract"},
                "data": {"contract.yaml": contract},
            }
        )
    documents += [
        _service(f"{name}-stable", name),
        _service(f"{name}-canary", name),
        pod_monitor(name, {"app": name}, [HASH_LABEL], "15s"),
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": f"{name}-analysis"},
            "spec": {"args": [{"name": "canary-hash"}, {"name": "stable-hash"}], "metrics": metrics},
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": 2,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {
                        "labels": {"app": name},
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)},
                    },
                    "spec": {"containers": [_container("model", image)]},
                },
                "strategy": {
                    "canary": {
                        "stableService": f"{name}-stable",
                        "canaryService": f"{name}-canary",
                        "steps": canary_steps,
                        "analysis": {
                            "templates": [{"templateName": f"{name}-analysis"}],
                            "startingStep": 1,
                            "args": [
                                {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                                {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                            ],
                        },
                    }
                },
            },
        },
    ]
    return documents


KSERVE_PORT = 8080  # the port KServe (and Knative) expect the predictor container to serve on
KSERVE_PORT_NAME = "http1"  # Knative accepts http1 or h2c as the serving port's name
#: the pod labels KServe (Serverless: Knative) gives predictor pods: the service, and each revision (canary or stable)
KSERVE_LABELS = ("serving.kserve.io/inferenceservice", "serving.knative.dev/revision")
KSERVE_FORMAT = "conveyor"  # a Conveyor model folder: model.yaml with its ONNX graph (and tokenizer)


def serving_runtime(name: str, image: str) -> dict[str, Any]:
    """Conveyor's server as a KServe ServingRuntime: the model folder KServe fetched into /mnt/models."""
    container = _container("kserve-container", image)
    container["command"] = ["python3", "-m", "conveyor.serving"]
    container["args"] = ["/mnt/models", "--port", str(KSERVE_PORT), "--name", "{{.Name}}"]
    container["ports"] = [{"name": KSERVE_PORT_NAME, "containerPort": KSERVE_PORT, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = KSERVE_PORT
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": name},
        "spec": {
            "annotations": {"prometheus.kserve.io/port": str(KSERVE_PORT), "prometheus.kserve.io/path": "/metrics"},
            "supportedModelFormats": [{"name": KSERVE_FORMAT, "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2"],
            "containers": [container],
        },
    }


def kserve_documents(
    name: str, image: str, steps: list[float], storage_uri: str, digest: str | None
) -> list[dict[str, Any]]:
    """The ServingRuntime and the InferenceService at the first step; the header says how to move it on."""
    runtime = f"{name}-conveyor"
    model: dict[str, Any] = {
        "modelFormat": {"name": KSERVE_FORMAT},
        "runtime": runtime,
        "protocolVersion": "v2",
        "storageUri": storage_uri,
    }
    if digest is not None:  # the server refuses files that are not the registered version
        model["env"] = [{"name": "CONVEYOR_SERVE_EXPECT_DIGEST", "value": digest.removeprefix("sha256:")}]
    predictor: dict[str, Any] = {"model": model}
    if steps[0] < 100:
        predictor["canaryTrafficPercent"] = round(steps[0])
    monitor = pod_monitor(name, {KSERVE_LABELS[0]: name}, list(KSERVE_LABELS), "15s", KSERVE_PORT_NAME)
    return [
        serving_runtime(runtime, image),
        monitor,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "Serverless"}},
            "spec": {"predictor": predictor},
        },
    ]


def kubernetes_documents(
    name: str, image: str, replicas: int = 1, host_port: int | None = None
) -> list[dict[str, Any]]:
    """A plain Deployment and Service: the version served, without a progressive strategy."""
    container = _container(name, image)
    if host_port is not None:  # a local engine (podman kube play, kind) publishes it on the host
        container["ports"][0]["hostPort"] = host_port
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
        },
    }
    return [deployment, _service(name, name)]


def export_kubernetes(name: str, image: str, replicas: int = 1, host_port: int | None = None) -> str:
    pinned = "" if "@sha256:" in image else "# warning: the image is not pinned by digest (IMAGE@sha256:...)\n"
    header = f"# Deployment and Service for {name}: written by `conveyor rollout export --format kubernetes`\n"
    return dump(kubernetes_documents(name, image, replicas, host_port), header + pinned)


def dump(documents: list[dict[str, Any]], header: str) -> str:
    return header + "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in documents)


def export_argo_rollouts(
    name: str,
    image: str,
    steps: list[float],
    interval_s: float,
    limits: Thresholds,
    contract: str | None,
    prometheus: str = PROMETHEUS,
    router_job: str | None = None,
) -> str:
    header = f"# Argo Rollouts canary for {name}: written by `conveyor rollout export --format argo-rollouts`\n"
    return dump(argo_documents(name, image, steps, interval_s, limits, contract, prometheus, router_job), header)


def export_kserve(name: str, image: str, steps: list[float], storage_uri: str, digest: str | None) -> str:
    patches = "".join(
        f"#   kubectl patch isvc {name} --type merge -p "
        f'\'{{"spec":{{"predictor":{{"canaryTrafficPercent":{round(weight)}}}}}}}\'\n'
        for weight in steps[1:]
    )
    pinned = "" if digest else "# warning: no --model-digest: the server cannot check the files it is given\n"
    header = (
        f"# KServe canary for {name}: written by `conveyor rollout export --format kserve`.\n"
        f"# Applying this sends {steps[0]:g}% to the new revision (KServe keeps the last ready one as stable);\n"
        "# after each step looks healthy, move on: the PodMonitor keeps each pod's revision as\n"
        "# serving_knative_dev_revision, so docs/rollouts.md's prediction queries judge the new revision with\n"
        "# that label in place of rollouts_pod_template_hash (and conveyor verify its address):\n" + patches + pinned
    )
    return dump(kserve_documents(name, image, steps, storage_uri, digest), header)
