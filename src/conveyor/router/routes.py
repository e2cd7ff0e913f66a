"""Which of the requests the router carries are predictions: the model server's route templates.

The router proxies every path, but only predictions (a generative version's answers among them) judge a
version: a canary's error rate, latency and answers are read from ``POST`` requests to the server's
prediction routes, as the exported Argo analysis reads them (``rollout/promql.py``, from
:data:`conveyor.serving.metrics.PREDICTION_ROUTES`).  A metadata or health ``GET`` sent through the router,
or a feedback post, is proxied and not counted.
"""

from __future__ import annotations

from conveyor.router.generations import is_generation

NOT_PREDICTIONS = frozenset({"/feedback"})


def route_of(path: str) -> str | None:
    """The model server's route template for PATH, for the prediction and feedback routes the router carries."""
    if path in ("/predict", "/invocations", "/feedback") or is_generation(path):
        return path
    parts = path.split("/")
    if len(parts) == 5 and parts[1:3] == ["v2", "models"] and parts[4] == "infer":
        return "/v2/models/{name}/infer"
    if len(parts) == 7 and parts[1:3] == ["v2", "models"] and parts[4] == "versions" and parts[6] == "infer":
        return "/v2/models/{name}/versions/{version}/infer"
    return None


def is_prediction(method: str, path: str) -> bool:
    """Whether a request of METHOD to PATH asks a version for predictions (what its analysis counts)."""
    return method == "POST" and route_of(path) not in (None, *NOT_PREDICTIONS)
