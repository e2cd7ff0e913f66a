"""A generative canary against stable: its answers' meaning, refusals and length, and its speed.

A generative version answers 200 whatever it says, so the traffic metric's errors and timeouts (which
count the OpenAI routes as predictions) see a broken prompt only when it breaks the protocol.  What
the router keeps of the window's generations (``router/generations.py``) is judged here:

* **similarity to stable on mirrored prompts**: each pair (stable's answer, the canary's to the same
  copied request) scored by the cosine of their MiniLM sentence embeddings; the mean with its bootstrap
  interval against ``min_answer_similarity`` (``generative.judgement``: under it beyond its spread
  fails, across it by more than ``similarity_margin`` is inconclusive).  A system prompt that makes the
  model refuse, or answer in another language, lands far under a harmless tweak's similarity;
* **refusal-rate shift**: the canary's share of refusals (``generative.refusal``) over stable's by more
  than ``max_refusal_rate_increase`` (and two refusals at least) fails;
* **output-length shift**: mean answer length in words, canary against stable, beyond
  ``max_answer_length_ratio`` either way fails;
* **time to first token and tokens/s**, read from each server's own ``/metrics`` (the generation
  histograms since each started; TTFT less the queue, which mirrored copies lengthen on the canary): a
  canary's mean TTFT over ``max_ttft_ratio`` x stable's (and over ``ttft_floor_ms``), or its tokens/s
  under ``min_tokens_per_second_ratio`` x stable's, fails.

The answers are mirrored pairs where mirroring is on (the same prompts), else each version's live
answers; fewer than ``min_compared`` is inconclusive.  No Argo Rollouts counterpart: the answers never
reach Prometheus (``docs/generative.md`` says what travels).
"""

from __future__ import annotations

from statistics import fmean
from typing import Any

from conveyor.rollout.analysis.metric import (
    AnalysisWindow,
    MeasurementError,
    Metric,
    Threshold,
    Verdict,
    metric,
    window_pairs,
)

TTFT = "conveyor_generation_time_to_first_token_seconds"
QUEUE = "conveyor_generation_queue_seconds"
INTER_TOKEN = "conveyor_generation_inter_token_seconds"


def server_speed(url: str) -> dict[str, float]:
    """A generative server's mean time to first token once a slot was free (ms: its TTFT less its queue time)
    and its tokens/s, since it started, from its Prometheus histograms.

    The queue is left out because mirroring loads the canary beyond its share of live traffic: every copy
    of stable's requests queues there too, and a canary would look slow for the analysis' own copies."""
    import httpx  # here: every metric module loads with the CLI's options, and the command starts without httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url.rstrip("/") + "/metrics", timeout=10).text
    except httpx.HTTPError as exc:
        raise MeasurementError(f"could not read {url}/metrics: {type(exc).__name__}") from exc
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in (TTFT, QUEUE, INTER_TOKEN):
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    speed: dict[str, float] = {}
    if sums.get(f"{TTFT}_count"):
        queued = sums.get(f"{QUEUE}_sum", 0.0) / max(sums.get(f"{QUEUE}_count", 0.0), 1.0)
        speed["ttft_ms"] = 1000 * max(sums[f"{TTFT}_sum"] / sums[f"{TTFT}_count"] - queued, 0.0)
    if sums.get(f"{INTER_TOKEN}_sum"):
        speed["tokens_per_s"] = sums[f"{INTER_TOKEN}_count"] / sums[f"{INTER_TOKEN}_sum"]
    return speed


def pair_similarities(pairs: list[tuple[str, str]]) -> list[float]:
    """Each pair's cosine similarity by meaning (MiniLM sentence embeddings, normalised)."""
    from conveyor.generative.scorers import embed

    stable, canary = embed([s for s, _ in pairs]), embed([c for _, c in pairs])
    return [float(v) for v in (stable * canary).sum(axis=1)]


def _words(answers: list[str]) -> float:
    return fmean(len(a.split()) for a in answers)


def judge_speed(stable: dict[str, float], canary: dict[str, float], limits: Any, verdict: Verdict) -> None:
    """The canary's mean TTFT and tokens/s against stable's (``server_speed``), with the limits' rules."""
    measured = verdict.measurements
    if "ttft_ms" in stable and "ttft_ms" in canary:
        measured["canary_ttft_ms"] = round(canary["ttft_ms"], 1)
        measured["stable_ttft_ms"] = round(stable["ttft_ms"], 1)
        ratio = canary["ttft_ms"] / max(stable["ttft_ms"], 1e-9)
        if ratio > limits.max_ttft_ratio and canary["ttft_ms"] > limits.ttft_floor_ms:
            verdict.add(
                "failed",
                f"the canary's mean time to first token {canary['ttft_ms']:.0f} ms is {ratio:.1f}x stable's "
                f"{stable['ttft_ms']:.0f} ms (limit {limits.max_ttft_ratio:g}x)",
            )
    if "tokens_per_s" in stable and "tokens_per_s" in canary:
        measured["canary_tokens_per_s"] = round(canary["tokens_per_s"], 1)
        measured["stable_tokens_per_s"] = round(stable["tokens_per_s"], 1)
        ratio = canary["tokens_per_s"] / max(stable["tokens_per_s"], 1e-9)
        if ratio < limits.min_tokens_per_second_ratio:
            verdict.add(
                "failed",
                f"the canary generates {canary['tokens_per_s']:.1f} tokens/s, {ratio:.2f}x stable's "
                f"{stable['tokens_per_s']:.1f} (floor {limits.min_tokens_per_second_ratio:g}x)",
            )


@metric
class GenerationMetric(Metric):
    name = "generation"
    summary = "a generative canary's answers against stable's (meaning, refusals, length) and its TTFT and tokens/s"
    order = 22
    thresholds = (
        Threshold("min_answer_similarity", float, 0.6, "mean similarity of mirrored answers to stable's", ge=0, le=1),
        Threshold(
            "similarity_margin", float, 0.05, "a similarity interval wider than this across the bar: wait", ge=0, le=1
        ),
        Threshold("max_refusal_rate_increase", float, 0.1, "canary minus stable share of refusals", ge=0, le=1),
        Threshold("max_answer_length_ratio", float, 2.0, "canary / stable mean answer length, either way", gt=1),
        Threshold("max_ttft_ratio", float, 3.0, "canary / stable mean time to first token ceiling", gt=0),
        Threshold("ttft_floor_ms", float, 250.0, "a mean time to first token below this never fails", ge=0),
        Threshold("min_tokens_per_second_ratio", float, 0.33, "canary / stable tokens per second floor", ge=0),
    )
    shown = ("generation_compared", "answer_similarity", "refusal_rate", "canary_ttft_ms", "canary_tokens_per_s")

    def applies(self, window: AnalysisWindow) -> bool:
        return window.stage != "post-promotion" and window.generative

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        limits = window.limits
        pairs = window_pairs(window.before, window.after, *window.canary) if limits.mirror_percent > 0 else []
        if pairs:
            stable, canary = [s for s, _ in pairs], [c for _, c in pairs]
        else:
            stable, canary = window.traffic("stable").answers, window.traffic("canary").answers
        verdict.measurements["generation_compared"] = min(len(stable), len(canary))
        if min(len(stable), len(canary)) < limits.min_compared:
            verdict.add(
                "inconclusive",
                f"{len(canary)} canary and {len(stable)} stable generation answers; at least {limits.min_compared}",
            )
        else:
            self._refusals(stable, canary, limits, verdict)
            self._lengths(stable, canary, limits, verdict)
            if pairs:
                self._similarity(pairs, limits, verdict)
        if window.stable_url and window.canary_url:
            judge_speed(server_speed(window.stable_url), server_speed(window.canary_url), limits, verdict)

    def _refusals(self, stable: list[str], canary: list[str], limits: Any, verdict: Verdict) -> None:
        from conveyor.generative.refusal import is_refusal

        refused = sum(map(is_refusal, canary))
        canary_rate, stable_rate = refused / len(canary), sum(map(is_refusal, stable)) / len(stable)
        verdict.measurements["refusal_rate"] = round(canary_rate, 4)
        verdict.measurements["stable_refusal_rate"] = round(stable_rate, 4)
        if canary_rate - stable_rate > limits.max_refusal_rate_increase and refused >= 2:
            verdict.add(
                "failed",
                f"the canary refuses {canary_rate:.0%} of prompts, stable {stable_rate:.0%}: over the limit "
                f"{limits.max_refusal_rate_increase:.0%} (e.g. {next(a for a in canary if is_refusal(a))[:80]!r})",
            )

    def _lengths(self, stable: list[str], canary: list[str], limits: Any, verdict: Verdict) -> None:
        mine, theirs = _words(canary), _words(stable)
        ratio = (mine + 1) / (theirs + 1)
        verdict.measurements["answer_words"] = round(mine, 2)
        verdict.measurements["stable_answer_words"] = round(theirs, 2)
        limit = limits.max_answer_length_ratio
        if ratio > limit or ratio < 1 / limit:
            verdict.add(
                "failed",
                f"the canary's answers average {mine:.1f} words, stable's {theirs:.1f}: a length shift over {limit:g}x",
            )

    def _similarity(self, pairs: list[tuple[str, str]], limits: Any, verdict: Verdict) -> None:
        from conveyor.generative.judgement import judge

        judged = judge(pair_similarities(pairs), limits.min_answer_similarity, limits.similarity_margin)
        verdict.measurements["answer_similarity"] = round(judged.mean, 4)
        verdict.measurements["answer_similarity_interval"] = [round(v, 4) for v in judged.interval]
        described = judged.describe(f"similarity of the canary's answers to stable's on {len(pairs)} mirrored prompts")
        if judged.outcome == "failed":
            canary_answer = min(pairs, key=lambda p: len(p[1]))[1]
            verdict.add("failed", f"{described} (e.g. {canary_answer[:80]!r})")
        elif judged.outcome == "too noisy":
            verdict.add("inconclusive", described)
