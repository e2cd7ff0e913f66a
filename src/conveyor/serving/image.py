"""Image classification: PNG or JPEG bytes in, the best labels with their probabilities out.

Each image is decoded with Pillow when its request arrives (so one broken file is that
request's 422, never its batch's failure), converted to the channels the model was trained
on, resized to its input size and normalised as the spec says, ``(pixel * scale - mean) / std``.
The batch of such arrays is one ``session.run``; logits become probabilities by softmax
unless the spec says the graph answers probabilities already.
"""

from __future__ import annotations

import binascii
import io
import warnings
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput, ModelLoadError
from conveyor.extras import needs
from conveyor.serving.model import check_classes, softmax
from conveyor.serving.runtime import OnnxSession, RuntimeOptions, TensorInfo
from conveyor.serving.spec import ImageInput, ResolvedModel
from conveyor.tracing import phase

MAX_PIXELS = 40_000_000  # a decompression bomb (a small file of a huge image) is refused, not decoded


def decode_base64(value: str, where: str) -> bytes:
    import base64

    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value  # a data: URL
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: not base64-encoded image bytes") from None


class ImageClassifier:
    """An ONNX session for an image classifier, fed from decoded images.  Thread-safe."""

    def __init__(self, resolved: ResolvedModel, options: RuntimeOptions) -> None:
        self.spec = resolved.spec
        assert self.spec.image is not None
        self.image: ImageInput = self.spec.image
        self.session = OnnxSession(resolved.model_path, options)
        if len(self.session.inputs) != 1:
            raise ModelLoadError(f"an image model takes one input, this graph takes {len(self.session.inputs)}")
        self.input = self.session.inputs[0]
        self._check_input(self.input)
        floats = [o for o in self.session.outputs if o.dtype.kind == "f"]
        if not floats:
            raise ModelLoadError("the image model has no float output (logits or probabilities)")
        self.output = floats[0]
        check_classes(self.output, self.spec.labels)
        channels = self.image.channels
        self.mean = np.array(self.image.mean * (channels if len(self.image.mean) == 1 else 1), np.float32)
        self.std = np.array(self.image.std * (channels if len(self.image.std) == 1 else 1), np.float32)

    def _check_input(self, info: TensorInfo) -> None:
        spec = self.image
        expected = self.input_shape()
        if len(info.shape) != 4 or info.dtype.kind != "f":
            raise ModelLoadError(f"an image model takes a 4-D float input, this one {info.dtype.name} {info.shape}")
        for got, want in zip(info.shape[1:], expected, strict=True):
            if got is not None and got != want:
                raise ModelLoadError(
                    f"the graph's input {info.name!r} is {list(info.shape)}, the spec's image {spec.layout} "
                    f"{list(expected)}"
                )

    def pixels(self, data: bytes, where: str) -> np.ndarray:
        """One image's input array (without the batch axis), or a 422 naming the item."""
        with needs("images", "serving an image-classification model"):
            from PIL import Image, UnidentifiedImageError

        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as opened:
                    if opened.format not in ("PNG", "JPEG", "MPO"):
                        raise InvalidInput(f"{where}: a {opened.format} image; send PNG or JPEG")
                    picture = opened.convert("L" if self.image.channels == 1 else "RGB")
                    picture = picture.resize((self.image.width, self.image.height), Image.Resampling.BILINEAR)
        except UnidentifiedImageError:
            raise InvalidInput(f"{where}: not a PNG or JPEG image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidInput(f"{where}: more than {MAX_PIXELS} pixels; send the image at the model's size") from None
        except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt file
            raise InvalidInput(f"{where}: the image could not be decoded ({exc})") from None
        array = np.asarray(picture, dtype=np.float32) * self.image.scale
        if array.ndim == 2:
            array = array[:, :, None]
        array = (array - self.mean) / self.std  # HWC
        if self.image.layout == "NCHW":
            array = array.transpose(2, 0, 1)
        return np.ascontiguousarray(array, dtype=self.input.dtype)

    def score(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Probabilities ``[N, labels]`` for decoded images (the batcher's function)."""
        return self.score_batch(np.stack(arrays))

    def score_batch(self, batch: np.ndarray) -> np.ndarray:
        with phase("inference"):
            out = self.session.run({self.input.name: batch}, [self.output.name])[self.output.name]
        scores = np.asarray(out, dtype=np.float64).reshape(len(batch), -1)
        return softmax(scores) if self.image.softmax else scores

    def warm_up(self) -> None:
        self.score([np.zeros(self.input_shape(), dtype=self.input.dtype)])

    def input_shape(self) -> tuple[int, int, int]:
        spec = self.image
        if spec.layout == "NCHW":
            return (spec.channels, spec.height, spec.width)
        return (spec.height, spec.width, spec.channels)


def answers(labels: list[str], top_k: int, boolean: str | None, scores: np.ndarray) -> list[dict[str, Any]]:
    """Per image: the best label and its probability, and the ``top_k`` best, best first."""
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[: min(top_k, len(labels))]
        best = labels[int(order[0])]
        answer: dict[str, Any] = {boolean: best == boolean} if boolean else {}
        answer["label"] = best
        answer["score"] = round(float(row[order[0]]), 6)
        answer["top"] = [{"label": labels[int(i)], "score": round(float(row[i]), 6)} for i in order]
        out.append(answer)
    return out
