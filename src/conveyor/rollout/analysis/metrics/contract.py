"""The verification contract, run against the new version's own address each analysis.

The same checks as ``conveyor verify`` (golden examples, bad input, v2), less latency, which
the traffic metric judges under real load; a generation contract's golden prompts, with stable as the
incumbent its ``incumbent: true`` expectations compare with.  In a cluster it is an Argo Rollouts Job metric
running ``conveyor verify`` against the canary Service.
"""

from __future__ import annotations

from typing import Any

from conveyor.rollout.analysis.metric import (
    AnalysisWindow,
    ArgoContext,
    MeasurementError,
    Metric,
    Threshold,
    Verdict,
    metric,
)


@metric
class ContractMetric(Metric):
    name = "contract"
    summary = "the verification contract against the new version's address"
    order = 30
    thresholds = (Threshold("contract", bool, True, "run the verification contract against the canary's address"),)
    shown = ("contract",)

    def applies(self, window: AnalysisWindow) -> bool:
        return window.contract is not None and bool(window.limits.contract)

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        from conveyor.verify.runner import check_server, with_v2_model

        assert window.contract is not None  # applies() measures only windows with a contract
        try:
            results = check_server(
                window.canary_url,
                with_v2_model(window.contract, window.model_name),
                skip=["latency.p95"],
                parallel=4,
                incumbent_url=window.stable_url or None,
            )
        except Exception as exc:  # the checks themselves could not run: a measurement problem, not a verdict
            raise MeasurementError(f"the contract checks could not run: {exc}") from exc
        failed = [r for r in results if r.status == "failed"]
        verdict.measurements["contract"] = {
            "passed": sum(r.status == "passed" for r in results),
            "failed": [r.id for r in failed],
        }
        for result in failed:
            verdict.add("failed", f"contract check {result.id}: {result.message}")

    def argo(self, limits: Any, ctx: ArgoContext) -> list[dict[str, Any]]:
        if not ctx.contract:
            return []
        verify = ["python", "-m", "conveyor", "verify", f"http://{ctx.name}-canary", "--contract"]
        container = {
            "name": "verify",
            "image": ctx.image,
            "command": [*verify, "/contract/contract.yaml"],
            "volumeMounts": [{"name": "contract", "mountPath": "/contract"}],
        }
        pod = {
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": [{"name": "contract", "configMap": {"name": f"{ctx.name}-contract"}}],
        }
        job = {"spec": {"backoffLimit": 0, "template": {"spec": pod}}}
        return [{"name": "contract", "count": 1, "failureLimit": 0, "provider": {"job": job}}]
