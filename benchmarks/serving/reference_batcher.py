"""The reference: a raw-ASGI text classifier with a 16 / 2 ms micro-batcher, the least code that serves well.

Standalone (uvicorn, uvloop, httptools, orjson, PyYAML, tokenizers, onnxruntime; nothing of Conveyor), so a peer
of ``conveyor serve`` in ``benchmarks.serving`` runs it from its own environment:

    python benchmarks/serving/reference_batcher.py --model DIR --port N

``POST /predict`` takes a JSON list of sentences and answers as ``conveyor serve`` does: per sentence
``{"<positive_label>": true|false}`` for a model with a ``positive_label`` (the reference model), else
``{"label": ...}``; one object for one sentence, a list for several.  Requests wait at most 2 ms for
others to join a batch of at most 16; one batch runs at a time on a worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import orjson
import uvicorn
import yaml
from tokenizers import Tokenizer

MAX_BATCH, MAX_WAIT_S = 16, 0.002


def load(model: Path) -> tuple[Any, Any, list[str], str | None]:
    spec = yaml.safe_load((model / "model.yaml").read_text())
    labels, max_length = spec["labels"], spec.get("max_length", 128)
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(model / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return tokenizer, session, labels, spec.get("positive_label")


def make_app(model: Path) -> Any:
    tokenizer, session, labels, positive = load(model)
    inputs = {i.name for i in session.get_inputs()}
    queue: asyncio.Queue[tuple[str, asyncio.Future[str]]] = asyncio.Queue()

    def classify(texts: list[str]) -> list[str]:
        encoded = tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, 1
        feeds = {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids),
        }
        logits = session.run(None, {k: v for k, v in feeds.items() if k in inputs})[0]
        return [labels[int(i)] for i in logits.argmax(axis=1)]

    async def batcher() -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + MAX_WAIT_S
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
                except TimeoutError:
                    break
            try:
                answers = await loop.run_in_executor(None, classify, [text for text, _ in batch])
                for (_, future), answer in zip(batch, answers, strict=True):
                    future.set_result(answer)
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    app.task = asyncio.create_task(batcher())  # type: ignore[attr-defined]
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = (
                body + message.get("body", b""),
                message.get("more_body", False),
            )
        try:
            texts = orjson.loads(body)
            assert scope["path"] == "/predict" and isinstance(texts, list) and texts
        except (orjson.JSONDecodeError, AssertionError):
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        for text, future in zip(texts, futures, strict=True):
            queue.put_nowait((text, future))
        found = [
            {positive: label == positive} if positive else {"label": label} for label in await asyncio.gather(*futures)
        ]
        answer = orjson.dumps(found[0] if len(found) == 1 else found)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.model),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
