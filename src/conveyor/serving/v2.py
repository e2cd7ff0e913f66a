"""Open Inference Protocol v2: request decoding and response encoding.

Covers JSON tensors (flat or nested, row-major) and the binary tensor data
extension that Triton's clients use by default: a JSON header of
``Inference-Header-Content-Length`` bytes followed by raw tensor bytes, with
BYTES elements as 4-byte little-endian length + content.  A BYTES element is
decoded to a string where it is UTF-8 and kept as bytes where it is not (an
image's PNG or JPEG bytes): each task decides what it takes, and answers a 422
naming the input for bytes where it needs text.  A missing value is ``null``
in JSON data of a FP or BYTES input (NaN in FP binary data): tabular models
take one where they handle it; other tasks refuse it by name.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.errors import BadRequest, InvalidInput
from conveyor.serving.body import not_json

HEADER_LENGTH = "inference-header-content-length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    # Unknown top-level fields are ignored, as the protocol's reference servers do: the KServe
    # SDK sends ``model_name`` (and some clients ``model_version``) in the body.  The tensors
    # themselves stay strict.
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class DecodedRequest:
    """A parsed request: tensors by input name, plus what the client wants back."""

    def __init__(self, request: InferenceRequest, tensors: dict[str, np.ndarray]) -> None:
        self.id = request.id
        self.tensors = tensors
        self.datatypes = {i.name: i.datatype for i in request.inputs}
        self.requested = [o.name for o in request.outputs] if request.outputs else None
        default_binary = bool((request.parameters or {}).get("binary_data_output", False))
        self.binary_outputs: dict[str, bool] = {}
        for out in request.outputs or []:
            self.binary_outputs[out.name] = bool((out.parameters or {}).get("binary_data", default_binary))
        self.default_binary = default_binary

    def wants_binary(self, name: str) -> bool:
        return self.binary_outputs.get(name, self.default_binary)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "invalid inference request: " + "; ".join(parts)


def decode_request(body: bytes, header_length: str | None) -> DecodedRequest:
    """Parse a v2 inference request body (JSON, or JSON + binary tensor data)."""
    binary = b""
    if header_length is not None:
        try:
            json_length = int(header_length)
        except ValueError:
            raise BadRequest("Inference-Header-Content-Length must be an integer") from None
        if not 0 < json_length <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length {json_length} exceeds the body")
        body, binary = body[:json_length], body[json_length:]
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise not_json(exc) from None
    if not isinstance(raw, dict):
        raise InvalidInput("invalid inference request: expected a JSON object with 'inputs'")
    try:
        request = InferenceRequest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from None

    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for item in request.inputs:
        if item.name in tensors:
            raise InvalidInput(f"input {item.name!r} appears twice")
        size = (item.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadRequest(f"input {item.name!r}: binary_data_size {size!r} exceeds the binary data")
            tensors[item.name] = decode_binary(item, binary[offset : offset + size])
            offset += size
        else:
            tensors[item.name] = decode_json(item)
    return DecodedRequest(request, tensors)


def _check_shape(item: RequestInput) -> int:
    if any(d < 0 for d in item.shape):
        raise InvalidInput(f"input {item.name!r}: shape {item.shape} has a negative dimension")
    return math.prod(item.shape)


def _dtype(item: RequestInput) -> np.dtype:
    dtype = DATATYPES.get(item.datatype)
    if dtype is None:
        raise InvalidInput(
            f"input {item.name!r}: unknown datatype {item.datatype!r}; use one of {', '.join(DATATYPES)}"
        )
    return dtype


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def decode_json(item: RequestInput) -> np.ndarray:
    dtype = _dtype(item)
    count = _check_shape(item)
    if item.data is None:
        raise InvalidInput(f"input {item.name!r}: 'data' is missing")
    if not isinstance(item.data, list):
        raise InvalidInput(f"input {item.name!r}: 'data' must be a JSON array (flat or nested), got {item.data!r:.40}")
    flat = _flatten(item.data)
    if len(flat) != count:
        raise InvalidInput(f"input {item.name!r}: shape {item.shape} needs {count} elements, got {len(flat)}")
    if item.datatype == "BYTES":
        if not all(isinstance(v, str) or v is None for v in flat):
            raise InvalidInput(f"input {item.name!r}: BYTES data must be strings (or null where a value is missing)")
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array.reshape(item.shape)
    if item.datatype == "BOOL":
        if not all(isinstance(v, bool) or v is None for v in flat):
            raise InvalidInput(f"input {item.name!r}: BOOL data must be true or false (or null where missing)")
        if None in flat:  # a missing value: the task decides whether the model takes one there
            array = np.empty(count, dtype=object)
            array[:] = flat
            return array.reshape(item.shape)
    elif dtype.kind == "f" and None in flat:  # null: a missing value, NaN as pandas has it
        if any(isinstance(v, bool) or not isinstance(v, int | float | None) for v in flat):
            raise InvalidInput(f"input {item.name!r}: {item.datatype} data must be numbers (or null where missing)")
    elif any(isinstance(v, bool) or not isinstance(v, int | float) for v in flat):
        raise InvalidInput(f"input {item.name!r}: {item.datatype} data must be numbers")
    elif dtype.kind in "iu" and any(isinstance(v, float) for v in flat):
        raise InvalidInput(f"input {item.name!r}: {item.datatype} data must be integers")
    try:
        array = np.array(flat, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"input {item.name!r}: values do not fit {item.datatype}: {exc}") from None
    return array.reshape(item.shape)


def decode_binary(item: RequestInput, raw: bytes) -> np.ndarray:
    dtype = _dtype(item)
    count = _check_shape(item)
    if item.datatype == "BYTES":
        values: list[str | bytes] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadRequest(f"input {item.name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + length > len(raw):
                raise BadRequest(f"input {item.name!r}: truncated BYTES element")
            element = raw[pos : pos + length]
            try:
                values.append(element.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(element)  # not text: an image's bytes, or text in another encoding (the task decides)
            pos += length
        if len(values) != count:
            raise InvalidInput(f"input {item.name!r}: shape {item.shape} needs {count} elements, got {len(values)}")
        array = np.empty(count, dtype=object)
        array[:] = values
        return array.reshape(item.shape)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input {item.name!r}: shape {item.shape} of {item.datatype} needs "
            f"{count * dtype.itemsize} bytes, got {len(raw)}",
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(item.shape)


def texts_from_tensor(name: str, array: np.ndarray) -> list[str]:
    """The strings of a BYTES tensor of shape [N] or [N, 1]."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInput(f"input {name!r}: text must have shape [N] or [N, 1], got {list(array.shape)}")
    texts = []
    for index, value in enumerate(array.tolist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"input {name!r} item {index}: text is not valid UTF-8") from None
        if not isinstance(value, str):
            raise InvalidInput(f"input {name!r} item {index}: expected text, got null")
        texts.append(value)
    return texts


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return NUMPY_TO_DATATYPE[array.dtype]
    except KeyError:
        raise ValueError(f"no v2 datatype for {array.dtype}") from None


def _binary_bytes(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OSU":
        parts = []
        for value in array.reshape(-1).tolist():
            data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_response(
    model_name: str,
    model_version: str,
    request: DecodedRequest,
    outputs: dict[str, np.ndarray],
) -> tuple[bytes, dict[str, str]]:
    """Encode outputs as JSON, or JSON + binary where the client asked for binary data.

    Returns the body and any extra response headers.
    """
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in outputs.items():
        entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype_of(array)}
        if request.wants_binary(name):
            raw = _binary_bytes(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            flat = array.reshape(-1)
            entry["data"] = [v.decode() if isinstance(v, bytes) else v for v in flat.tolist()]
        entries.append(entry)
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = entries
    json_part = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return json_part, {}
    return json_part + b"".join(chunks), {"Inference-Header-Content-Length": str(len(json_part))}
