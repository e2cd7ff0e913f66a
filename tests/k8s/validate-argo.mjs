// Validate Argo Rollouts, Gateway API and prometheus-operator documents (JSON lines on stdin) against the schemas
// generated from the published CRDs (@kubernetes-models/argo-rollouts, @kubernetes-models/gateway-api,
// @kubernetes-models/prometheus-operator).
// Prints one JSON result per line.
import { readFileSync } from "node:fs";
import { AnalysisTemplate, Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const kinds = { Rollout, AnalysisTemplate, HTTPRoute, PodMonitor };
for (const line of readFileSync(0, "utf8").split("\n").filter(Boolean)) {
  const doc = JSON.parse(line);
  const Model = kinds[doc.kind];
  if (!Model) {
    console.log(JSON.stringify({ kind: doc.kind, ok: false, error: "unknown kind" }));
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(JSON.stringify({ kind: doc.kind, ok: true }));
  } catch (error) {
    console.log(JSON.stringify({ kind: doc.kind, ok: false, error: String(error.message || error) }));
  }
}
