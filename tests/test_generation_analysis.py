"""The generation metric of a canary on recorded answers (router snapshots written by hand): a canary
that refuses, one whose answers grow long, one whose answers mean something else, and a harmless one;
and the router's reading of an answer's text, whole or streamed."""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.rollout.analysis.metric import AnalysisWindow, Verdict
from conveyor.rollout.analysis.metrics.generation import judge_speed
from conveyor.rollout.analysis.run import analyse
from conveyor.rollout.analysis.thresholds import checked_thresholds
from conveyor.router.generations import answer_text

STABLE = [
    "Boil the egg in water for ten minutes.",
    "Blue is a calm colour.",
    "Cats eat meat and fish.",
    "Two plus two is four.",
]


def _snapshot(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    live = {"requests": len(pairs), "codes": {"200": len(pairs)}, "buckets": [len(pairs)], "labels": {}}
    traffic = [
        {"backend": "stable", "version": "chat:1", "kind": "live", **live,
         "answers_seen": len(pairs), "answers": [s for s, _ in pairs]},
        {"backend": "canary", "version": "chat:2", "kind": "live", **live,
         "answers_seen": len(pairs), "answers": [c for _, c in pairs]},
    ]  # fmt: skip
    comparison = {"backend": "canary", "version": "chat:2", "agreed": 0, "disagreed": 0, "dropped": 0,
                  "pairs_seen": len(pairs), "pairs": [list(p) for p in pairs]}  # fmt: skip
    return {"instance": "router", "buckets": ["+Inf"], "traffic": traffic, "comparisons": [comparison]}


def _judge(canary: list[str]) -> Any:
    pairs = list(zip(STABLE * 2, canary * 2, strict=True))
    limits = checked_thresholds({"min_requests": 4, "min_compared": 4, "mirror_percent": 100, "p99_floor_ms": 60000})
    window = AnalysisWindow(
        stage="canary", before={"instance": "router"}, after=_snapshot(pairs), stable=("stable", "chat:1"),
        canary=("canary", "chat:2"), canary_url="", limits=limits,
    )  # fmt: skip
    return analyse(window)


def test_a_harmless_canary_passes_with_its_measurements() -> None:
    verdict = _judge(["Put the egg in boiling water for ten minutes.", "Blue is a calm colour.",
                      "Cats eat fish and meat.", "Two and two make four."])  # fmt: skip
    assert verdict.outcome == "successful", verdict.reasons
    assert verdict.measurements["answer_similarity"] > 0.8 and verdict.measurements["refusal_rate"] == 0.0
    assert verdict.measurements["generation_compared"] == 8 and "agreement" not in verdict.measurements


def test_a_refusing_canary_fails_on_its_refusal_rate() -> None:
    verdict = _judge(["I cannot help with that."] * 3 + ["Two plus two is four."])
    assert verdict.outcome == "failed"
    assert any("refuses 75% of prompts, stable 0%" in reason for reason in verdict.reasons), verdict.reasons


def test_answers_three_times_as_long_fail_on_their_length() -> None:
    verdict = _judge([answer + " " + answer + " " + answer for answer in STABLE])
    assert any("length shift over 2x" in reason for reason in verdict.reasons), verdict.reasons


def test_answers_that_mean_something_else_fail_on_their_similarity() -> None:
    verdict = _judge(["La réponse est non.", "Je ne sais pas.", "Le chat mange.", "Quatre."])
    assert verdict.outcome == "failed"
    assert any("similarity of the canary's answers to stable's on 8 mirrored prompts" in r for r in verdict.reasons)


def test_a_slow_canary_fails_on_its_time_to_first_token_or_its_tokens_per_second() -> None:
    limits = checked_thresholds({})

    def judged(canary: dict[str, float]) -> Verdict:
        verdict = Verdict()
        judge_speed({"ttft_ms": 200.0, "tokens_per_s": 30.0}, canary, limits, verdict)
        return verdict

    assert judged({"ttft_ms": 400.0, "tokens_per_s": 25.0}).outcome == "successful"
    slow_start = judged({"ttft_ms": 900.0, "tokens_per_s": 30.0})
    assert slow_start.outcome == "failed" and "time to first token 900 ms is 4.5x" in slow_start.reasons[0]
    assert judged({"ttft_ms": 200.0, "tokens_per_s": 6.0}).outcome == "failed"
    fast = Verdict()  # three times a quick start is still quick: under the floor nothing fails
    judge_speed({"ttft_ms": 20.0}, {"ttft_ms": 80.0}, limits, fast)
    assert fast.outcome == "successful" and fast.measurements["canary_ttft_ms"] == 80.0


def test_the_router_reads_an_answers_text_whole_or_streamed() -> None:
    whole = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}}]}
    assert answer_text(orjson.dumps(whole)) == "Paris."
    assert answer_text(orjson.dumps({"choices": [{"index": 0, "text": " 5, 6"}]})) == " 5, 6"
    chunks = [{"choices": [{"delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"delta": {"content": "Par"}}]}, {"choices": [{"delta": {"content": "is."}}]},
              {"choices": [], "usage": {"prompt_tokens": 3}}]  # fmt: skip
    stream = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    assert answer_text(stream) == "Paris."
    assert answer_text(b"not json") is None
