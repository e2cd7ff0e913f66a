"""The peer servers ``benchmarks.serving`` measures beside Conveyor, and the ratios it reports against them.

Each peer serves the MiniLM reference model in its own virtual environment (``benchmarks/peers``), the
way its users run it:

* **MLServer** 1.7.1 with a custom runtime (``benchmarks/peers/mlserver_runtime.py``: MLServer has no
  ONNX runtime) and adaptive batching of at most 16 requests waiting at most 5 ms, over the V2 protocol;
* **BentoML** 1.4.40, a service whose API is ``batchable`` with ``max_batch_size=16``;
* **the raw-ASGI reference**: ``benchmarks/serving/reference_batcher.py``, a hand-written uvicorn app
  with its own micro-batcher, the least code that serves this model well.

Before any timing, every server answers each benchmark sentence alone and must agree with raw
onnxruntime's label on all of them (``check_agreement``).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
from tokenizers import Tokenizer

from benchmarks.peers.venv import peer_python

REPO = Path(__file__).resolve().parents[2]
PEER_CODE = REPO / "benchmarks" / "peers"
REFERENCE_BATCHER = REPO / "benchmarks" / "serving" / "reference_batcher.py"
MLSERVER_MODEL = "minilm"


@dataclass(frozen=True)
class Peer:
    """One peer server: how it starts, where it is asked, what it is sent and how its answer reads."""

    name: str  # as the tables show it
    venv: str  # its pins: benchmarks/peers/<venv>.txt
    path: str  # the prediction route
    body: Callable[[str], Any]  # one sentence's request body (JSON)
    label: Callable[[Any, Sequence[str]], str]  # the label in the answer (JSON) to that body, given the labels
    command: Callable[[Path, Path, int, Path], list[str]]  # (python, model, port, scratch folder) -> argv
    env: Callable[[Path], dict[str, str]] = field(default=lambda scratch: {})


def _mlserver_command(python: Path, model: Path, port: int, scratch: Path) -> list[str]:
    """MLServer's model repository (server settings and the model's, adaptive batching 16 / 5 ms) and its CLI."""
    from conveyor.verify.targets import free_port

    repository = scratch / "mlserver"
    (repository / MLSERVER_MODEL).mkdir(parents=True, exist_ok=True)
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "debug": False}
    (repository / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": MLSERVER_MODEL,
        "implementation": "mlserver_runtime.MiniLMRuntime",
        "max_batch_size": 16,
        "max_batch_time": 0.005,
    }
    (repository / MLSERVER_MODEL / "model-settings.json").write_text(json.dumps(model_settings))
    return [str(python.parent / "mlserver"), "start", str(repository)]


def _bentoml_command(python: Path, model: Path, port: int, scratch: Path) -> list[str]:
    serve = [str(python.parent / "bentoml"), "serve", "bentoml_service:MiniLMService", "--host", "127.0.0.1"]
    return [*serve, "--port", str(port), "--working-dir", str(PEER_CODE)]


def _reference_command(python: Path, model: Path, port: int, scratch: Path) -> list[str]:
    return [str(python), str(REFERENCE_BATCHER), "--model", str(model), "--port", str(port)]


def _first(answer: Any) -> Any:
    return answer[0] if isinstance(answer, list) else answer


def classic_label(answer: Any, labels: Sequence[str]) -> str:
    """The label of the classic answer to one text: ``{"label": ...}``, or ``{"<label>": true|false}``
    for a two-label model answered as a boolean (``conveyor serve`` with a ``positive_label``, the
    reference batcher)."""
    first = _first(answer)
    if "label" in first:
        return str(first["label"])
    ((boolean, value),) = first.items()
    return str(boolean) if value else next(label for label in labels if label != boolean)


PEERS = {
    "mlserver": Peer(
        "MLServer, batch 16/5 ms",
        "mlserver",
        f"/v2/models/{MLSERVER_MODEL}/infer",
        lambda text: {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]},
        lambda answer, labels: answer["outputs"][0]["data"][0],
        _mlserver_command,
    ),
    "bentoml": Peer(
        "BentoML, batchable 16",
        "bentoml",
        "/classify",
        lambda text: {"texts": [text]},
        lambda answer, labels: _first(answer),
        _bentoml_command,
        lambda scratch: {"BENTOML_HOME": str(scratch / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"},
    ),
    "reference": Peer(
        "raw-ASGI batcher 16/2 ms",
        "reference",
        "/predict",
        lambda text: [text],
        classic_label,
        _reference_command,
    ),
}


def model_env(model: Path) -> dict[str, str]:
    """What ``benchmarks/peers/minilm.py`` reads: the model folder, its labels and its max_length."""
    from conveyor.serving.spec import resolve_model

    spec = resolve_model(model).spec
    return {
        "PEER_MODEL_DIR": str(model),
        "PEER_LABELS": ",".join(spec.labels),
        "PEER_MAX_LENGTH": str(spec.max_length),
        "PYTHONPATH": str(PEER_CODE),
    }


@contextlib.contextmanager
def running_peers(
    names: Sequence[str], model: Path, start: Callable[..., Any], stop: Callable[..., Any]
) -> Iterator[dict[str, str]]:
    """The named peers, each started from its own environment and ready: their base URLs by peer name."""
    from conveyor.verify.targets import free_port

    processes: dict[str, Any] = {}
    urls: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in names:
                peer = PEERS[name]
                python = peer_python(peer.venv)
                scratch = Path(tmp) / name
                scratch.mkdir()
                port = free_port()
                argv = peer.command(python, model, port, scratch)
                processes[name] = start(argv, {**model_env(model), **peer.env(scratch)})
                urls[name] = f"http://127.0.0.1:{port}"
            for name, url in urls.items():
                wait_answers(PEERS[name], url, processes[name])
            yield urls
        finally:
            for process in processes.values():
                stop(process)


def wait_answers(peer: Peer, url: str, process: Any, timeout: float = 180) -> None:
    """Until PEER answers a prediction (a peer's readiness route says less than that)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with {process.returncode}: {process.args}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.post(url + peer.path, json=peer.body("warm up"), timeout=10).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{peer.name} never answered at {url}{peer.path}")


def write_bodies(peer: Peer, sentences: Sequence[str], folder: Path) -> Path:
    """wrk's request bodies for PEER: one sentence's body per line."""
    path = folder / f"bodies-{peer.venv}.txt"
    path.write_text("\n".join(json.dumps(peer.body(s)) for s in sentences) + "\n")
    return path


def onnxruntime_labels(model: Path, sentences: Sequence[str]) -> list[str]:
    """Raw onnxruntime's label for each sentence alone (the Rust tokenizer, the model's max_length)."""
    from conveyor.serving.spec import resolve_model

    spec = resolve_model(model).spec
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(spec.max_length)
    session = onnxruntime.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    labels = []
    for sentence in sentences:
        ids = np.array([tokenizer.encode(sentence).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        logits = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
        labels.append(spec.labels[int(np.argmax(logits[0]))])
    return labels


def check_agreement(
    servers: dict[str, tuple[str, str, Callable[[str], Any], Callable[[Any, Sequence[str]], str]]],
    expected: Sequence[str],
    sentences: Sequence[str],
    labels: Sequence[str],
) -> dict[str, int]:
    """Each server's agreement with raw onnxruntime, sentence by sentence; exits when one disagrees.

    ``servers``: name -> (base URL, path, body of a sentence, label of an answer)."""
    agreed = {}
    with httpx.Client(timeout=30) as client:
        for name, (url, path, body, label) in servers.items():
            got = [label(client.post(url + path, json=body(s)).raise_for_status().json(), labels) for s in sentences]
            agreed[name] = sum(a == b for a, b in zip(got, expected, strict=True))
            if agreed[name] != len(sentences):
                wrong = next(s for s, a, b in zip(sentences, got, expected, strict=True) if a != b)
                raise SystemExit(
                    f"{name} agrees with raw onnxruntime on {agreed[name]}/{len(sentences)} sentences only "
                    f"(e.g. {wrong!r}): not timed"
                )
    return agreed


def ratio_rows(
    conveyor: Sequence[dict[int, float]], peer: Sequence[dict[int, float]], levels: Sequence[int]
) -> dict[int, tuple[float, float, float]]:
    """Per concurrency, Conveyor's value over the peer's taken within each round: (median, min, max)."""
    rows = {}
    for c in levels:
        values = [ours[c] / theirs[c] for ours, theirs in zip(conveyor, peer, strict=True)]
        rows[c] = (float(np.median(values)), min(values), max(values))
    return rows
