"""Prometheus metrics of generation, per model version: what an LLM endpoint is judged by.

Time to first token (what a person waits before anything shows), the time between tokens (how fast
the answer reads), the time a request queued for a free slot, and tokens in and out.  They sit beside
the model server's request metrics (``serving/metrics.py``) on the same ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from conveyor.serving.metrics import LATENCY_BUCKETS

TOKEN_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)

TIME_TO_FIRST_TOKEN = Histogram(
    "conveyor_generation_time_to_first_token_seconds",
    "Time from receiving a generation request to its first token (queue and prompt processing included).",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
INTER_TOKEN = Histogram(
    "conveyor_generation_inter_token_seconds",
    "Time between two tokens of one answer.",
    ["model", "version"],
    buckets=TOKEN_BUCKETS,
)
QUEUE_TIME = Histogram(
    "conveyor_generation_queue_seconds",
    "Time a generation request waited for a free slot of the engine.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
PROMPT_TOKENS = Counter("conveyor_generation_prompt_tokens_total", "Tokens of the prompts read.", ["model", "version"])
COMPLETION_TOKENS = Counter(
    "conveyor_generation_completion_tokens_total", "Tokens generated in answers.", ["model", "version"]
)
GENERATIONS = Counter(
    "conveyor_generations_total",
    "Answers by how they finished: stop, length, or cancelled (the client went away).",
    ["model", "version", "finish"],
)


class GenerationRecorder:
    """The generation metrics of one served version, its label children resolved once."""

    def __init__(self, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        self.labels = labels
        self.ttft = TIME_TO_FIRST_TOKEN.labels(**labels)
        self.inter_token = INTER_TOKEN.labels(**labels)
        self.queue = QUEUE_TIME.labels(**labels)
        self.prompt_tokens = PROMPT_TOKENS.labels(**labels)
        self.completion_tokens = COMPLETION_TOKENS.labels(**labels)

    def finished(self, finish: str, prompt_tokens: int, completion_tokens: int) -> None:
        GENERATIONS.labels(finish=finish, **self.labels).inc()
        self.prompt_tokens.inc(prompt_tokens)
        self.completion_tokens.inc(completion_tokens)
