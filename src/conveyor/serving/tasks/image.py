"""Image classification: ``/predict`` takes one PNG or JPEG as the body (``Content-Type:
image/png`` or ``image/jpeg``), or JSON with base64 images (a list of strings, of ``{"b64": ...}``
objects, or ``{"instances": [...]}`` as KServe's v1 protocol and TF Serving write it), and
answers the best labels with their probabilities.

v2 takes one BYTES input with the images (raw bytes with the binary extension, base64 in
JSON), or the graph's own float input by name, and answers ``label`` and ``probabilities``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.errors import BadRequest, InvalidInput, UnsupportedMediaType
from conveyor.extras import require
from conveyor.serving.body import is_json, json_body
from conveyor.serving.image import ImageClassifier, answers, decode_base64
from conveyor.serving.tasks import RunAlone, Scores, Submit, TaskServer
from conveyor.serving.tasks.text import check_item_count
from conveyor.serving.v2 import DecodedRequest

if TYPE_CHECKING:
    from conveyor.serving.dataplane import ServingOptions
    from conveyor.serving.spec import ResolvedModel

IMAGE_INPUT = "image"  # the BYTES input v2 clients send encoded images in, as the metadata names it
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "application/octet-stream")
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
EXPECTED = 'a PNG or JPEG body, or JSON with base64 images, e.g. ["iVBORw0KGgo..."] or [{"b64": "..."}]'


class ImageServer(TaskServer):
    model: ImageClassifier

    def __init__(self, resolved: ResolvedModel, options: ServingOptions) -> None:
        # decoding needs Pillow (Task.extra): said before the server starts, not as a server never ready
        require("PIL.Image", extra="images", for_="serving an image-classification model")
        super().__init__(resolved, options)

    def load(self) -> None:
        self.model = ImageClassifier(self.resolved, self.options.runtime)
        self.model.warm_up()

    @property
    def session(self) -> Any:
        return self.model.session

    def score(self, items: list[Any]) -> Scores:
        return self.model.score(items)

    def logged_inputs(self, items: list[Any]) -> list[Any] | None:
        return None  # pixels are never logged; the answers are

    def check_content_type(self, content_type: str | None) -> None:
        if content_type is not None and not is_json(content_type) and _media(content_type) not in IMAGE_TYPES:
            raise UnsupportedMediaType(
                f"Content-Type must be image/png, image/jpeg or application/json, got {content_type!r}"
            )

    def parse_predict(self, body: bytes, content_type: str | None) -> list[Any]:
        self.check_content_type(content_type)
        if content_type is not None and _media(content_type) in IMAGE_TYPES:
            if not body:
                raise BadRequest(f"request body is empty: send {EXPECTED}")
            return [self.model.pixels(body, "the image")]
        payload = json_body(body, EXPECTED)
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]
        items = payload if isinstance(payload, list) else [payload]
        check_item_count(len(items), self.options.max_items, "images")
        return [self.model.pixels(_base64_item(item, index), f"item {index}") for index, item in enumerate(items)]

    def answers(self, scores: Scores) -> list[dict[str, Any]]:
        return answers(self.spec.labels, self.model.image.top_k, self.spec.boolean_label, scores)

    async def infer(self, request: DecodedRequest, submit: Submit, run_alone: RunAlone) -> dict[str, np.ndarray]:
        if len(request.tensors) != 1:
            raise InvalidInput(
                f"model {self.spec.name!r} takes one input with the images, got {sorted(request.tensors)}"
            )
        ((name, tensor),) = request.tensors.items()
        if name not in (IMAGE_INPUT, self.model.input.name):
            raise BadRequest(
                f"unknown input {name!r}: model {self.spec.name!r} takes the images as the BYTES input "
                f"{IMAGE_INPUT!r} or its graph's input {self.model.input.name!r} as floats"
            )
        if request.datatypes[name] == "BYTES":
            values = tensor.reshape(-1).tolist()
            check_item_count(len(values), self.options.max_items, "images")
            scores = await submit(
                [self.model.pixels(_bytes_item(v, name, i), f"input {name!r} item {i}") for i, v in enumerate(values)]
            )
        elif name == self.model.input.name:
            check_item_count(len(tensor), self.options.max_items, "images")
            batch = _conform(tensor, self.model)
            scores = await run_alone(lambda: self.model.score_batch(batch))
        else:
            raise InvalidInput(
                f"input {name!r}: send the images as BYTES, or the graph's input {self.model.input.name!r} as floats"
            )
        return self.pick(request.requested, ["label", "probabilities"], self.label_outputs(scores))

    def metadata(self) -> dict[str, Any]:
        image = self.spec.image
        assert image is not None
        inputs: list[dict[str, Any]] = [
            {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "PNG or JPEG"}}
        ]
        if self.loaded:
            inputs.append({"name": self.model.input.name, "datatype": "FP32", "shape": [-1, *self.model.input_shape()]})
        return {
            "inputs": inputs,
            "outputs": self.label_metadata(),
            "parameters": {"labels": self.spec.labels, "task": self.spec.task, "image": image.model_dump()},
        }


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _base64_item(item: object, index: int) -> bytes:
    if isinstance(item, dict) and set(item) == {"b64"}:
        item = item["b64"]
    if not isinstance(item, str):
        raise InvalidInput(f'item {index}: expected a base64 string or {{"b64": ...}}, got {type(item).__name__}')
    return decode_base64(item, f"item {index}")


def _bytes_item(value: object, name: str, index: int) -> bytes:
    where = f"input {name!r} item {index}"
    if value is None:
        raise InvalidInput(f"{where}: expected an image, got null")
    if isinstance(value, bytes):
        if value.startswith(MAGIC):
            return value  # raw image bytes (the binary tensor extension)
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: neither PNG/JPEG bytes nor base64") from None
    return decode_base64(str(value), where)


def _conform(tensor: np.ndarray, model: ImageClassifier) -> np.ndarray:
    want = model.input_shape()
    if tensor.ndim != 4 or tuple(tensor.shape[1:]) != want:
        raise InvalidInput(
            f"input {model.input.name!r}: expected shape [-1, {', '.join(map(str, want))}], got {list(tensor.shape)}"
        )
    if tensor.dtype.kind not in "fiu":
        raise InvalidInput(f"input {model.input.name!r}: expected FP32, got {tensor.dtype.name}")
    return np.ascontiguousarray(tensor, dtype=model.input.dtype)
