"""Unit tests of the pieces that need no server: spec, v2 codec, batcher."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from conveyor.errors import ClientError, ModelLoadError
from conveyor.serving.batching import Batcher
from conveyor.serving.spec import ModelSpec, resolve_model
from conveyor.serving.v2 import decode_request, encode_response


def test_spec_defaults_and_boolean_label() -> None:
    spec = ModelSpec(name="m")
    assert spec.labels == ["negative", "positive"]
    assert spec.boolean_label == "positive"
    assert ModelSpec(name="m", labels=["ham", "spam"]).boolean_label == "spam"
    assert ModelSpec(name="m", labels=["a", "b", "c"]).boolean_label is None


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "x" * 200, "bad\nname", "-lead"])
def test_spec_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError, match="model name"):
        ModelSpec(name=name)


def test_bare_onnx_without_tokenizer_is_a_tensor_model(tmp_path) -> None:
    from tests.models import doubling_model

    path = doubling_model(tmp_path / "my model.onnx")
    resolved = resolve_model(path)
    assert resolved.spec.task == "tensor"
    assert resolved.spec.name == "my-model"
    assert resolved.tokenizer_path is None


def test_bare_onnx_with_tokenizer_is_a_text_model(tmp_path) -> None:
    from tests.models import no_mask_model, word_tokenizer

    path = no_mask_model(tmp_path / "roberta.onnx")
    resolved = resolve_model(path, tokenizer=word_tokenizer(tmp_path / "tok.json"), name="roberta", version="9")
    assert resolved.spec.task == "text-classification"
    assert (resolved.spec.name, resolved.spec.version) == ("roberta", "9")


def test_missing_tokenizer_is_a_load_error(tmp_path) -> None:
    from tests.models import no_mask_model

    path = no_mask_model(tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match="tokenizer file not found"):
        resolve_model(path, tokenizer=tmp_path / "missing.json")


def test_v2_binary_bytes_roundtrip() -> None:
    texts = ["héllo", "", "world"]
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = (
        b'{"inputs":[{"name":"text","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":'
        + str(len(raw)).encode()
        + b'}}],"outputs":[{"name":"label","parameters":{"binary_data":true}}]}'
    )
    request = decode_request(header + raw, str(len(header)))
    assert request.tensors["text"].tolist() == texts
    assert request.wants_binary("label")
    body, headers = encode_response("m", "1", request, {"label": np.array(["a", "bc"], dtype=object)})
    json_length = int(headers["Inference-Header-Content-Length"])
    assert body[json_length:] == struct.pack("<I", 1) + b"a" + struct.pack("<I", 2) + b"bc"


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b'{"inputs":[]}', "99", "exceeds the body"),
        (b'{"inputs":[]}', "abc", "must be an integer"),
        (
            b'{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}abcd',
            None,
            "not valid JSON",
        ),
    ],
)
def test_v2_binary_framing_errors(body: bytes, header: str | None, message: str) -> None:
    if header is None:
        header = str(len(body) - 4)
        body = body[:-4] + b"abc"  # 3 bytes where 8 were announced
        message = "exceeds the binary data"
    with pytest.raises(ClientError, match=message):
        decode_request(body, header)


def test_v2_integer_data_rejects_floats_and_overflow() -> None:
    def req(data: list, datatype: str) -> bytes:
        import orjson

        return orjson.dumps({"inputs": [{"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}]})

    assert decode_request(req([1, 2], "INT64"), None).tensors["x"].dtype == np.int64
    with pytest.raises(ClientError, match="must be integers"):
        decode_request(req([1.5], "INT64"), None)
    with pytest.raises(ClientError, match="do not fit"):
        decode_request(req([300], "UINT8"), None)


def test_batcher_groups_concurrent_jobs_and_keeps_order() -> None:
    seen: list[int] = []

    def handler(items: list[int]) -> list[int]:
        seen.append(len(items))
        return [i * 10 for i in items]

    async def main() -> list[list[int]]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=8, max_wait=0.05)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(8)))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(8)]
    assert sum(seen) == 16
    assert max(seen) <= 8
    assert len(seen) < 8, "jobs submitted together were not batched"


@pytest.mark.parametrize(("max_wait", "waits"), [(0.0, False), (2.0, True)])
def test_a_lone_request_waits_only_when_a_batch_wait_is_set(max_wait: float, waits: bool) -> None:
    async def main() -> float:
        batcher: Batcher[int, int] = Batcher(lambda items: items, max_batch_size=64, max_wait=max_wait)
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit([1])
        elapsed = loop.time() - started
        await batcher.close()
        return elapsed

    elapsed = asyncio.run(main())
    assert (elapsed >= 2.0) if waits else (elapsed < 1.0)


def test_batcher_propagates_handler_errors_to_every_job() -> None:
    def handler(items: list[int]) -> list[int]:
        raise RuntimeError("boom")

    async def main() -> list[BaseException]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=8)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(3)), return_exceptions=True)
        await batcher.close()
        return results

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_parallel_batches_compute_at_the_same_time() -> None:
    import threading

    barrier = threading.Barrier(2, timeout=5)  # passes only if two batches run at once

    def handler(items: list[int]) -> list[int]:
        barrier.wait()
        return items

    async def main() -> list[list[int]]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=1, parallel_batches=2)
        batcher.start()
        try:
            return await asyncio.gather(batcher.submit([1]), batcher.submit([2]))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [[1], [2]]


def test_batcher_close_finishes_the_running_batch_and_refuses_queued_jobs() -> None:
    import threading

    from conveyor.errors import NotReady

    release = threading.Event()

    def handler(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    async def main() -> tuple[object, object, object]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=1)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit([1]))
        queued = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0.05)  # [1] computes, [2] waits for the slot
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.05)
        release.set()
        await closing
        late = await asyncio.gather(batcher.submit([3]), return_exceptions=True)
        return await running, (await asyncio.gather(queued, return_exceptions=True))[0], late[0]

    finished, refused, late = asyncio.run(main())
    assert finished == [1]
    assert isinstance(refused, NotReady) and isinstance(late, NotReady)


def test_wait_until_ready_reports_an_exited_server_and_a_timeout_with_its_logs() -> None:
    from conveyor.errors import ConveyorError
    from conveyor.readiness import wait_until_ready
    from conveyor.verify.targets import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ConveyorError, match=r"the backend exited before it was ready:\nlast log line"):
        wait_until_ready(url, lambda: False, lambda: "last log line", 5, "the backend")
    with pytest.raises(ConveyorError, match=r"was not ready after 0.5s \(ConnectError\):\nlast log line"):
        wait_until_ready(url, lambda: True, lambda: "last log line", 0.5, "the backend")


def test_image_names_are_lower_cased_in_their_repository_only() -> None:
    from conveyor.packaging.builders import image_reference

    assert image_reference("ghcr.io/Acme/Sentiment:3") == "ghcr.io/acme/sentiment:3"
    assert image_reference("127.0.0.1:5000/m:V1") == "127.0.0.1:5000/m:V1"  # tags keep their case
    assert image_reference("Localhost:5000/ABC") == "localhost:5000/abc"  # a port is not a tag


def test_owner_in_a_default_is_the_repository_owner_in_ci_and_local_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conveyor.pipeline.github import _literal
    from conveyor.pipeline.runner import resolve_params
    from conveyor.pipeline.spec import Pipeline

    pipeline = Pipeline.model_validate(
        {"params": {"image": "ghcr.io/{owner}/m", "n": 3}, "steps": {"s": {"run": "true"}}}
    )
    monkeypatch.delenv("GITHUB_REPOSITORY_OWNER", raising=False)
    assert resolve_params(pipeline, {})["image"] == "ghcr.io/local/m"
    monkeypatch.setenv("GITHUB_REPOSITORY_OWNER", "Acme")
    assert resolve_params(pipeline, {}) == {"image": "ghcr.io/acme/m", "n": 3}
    assert _literal("ghcr.io/{owner}/m") == "format('ghcr.io/{0}/m', github.repository_owner)"
    assert _literal("it's") == "'it''s'" and _literal(True) == "'true'"
