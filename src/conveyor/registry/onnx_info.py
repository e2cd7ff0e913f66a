"""Framework facts read from a model file: for ONNX, the opset and the producer.

An ONNX file is one protobuf ``ModelProto`` whose graph (field 7) holds the
weights.  ``onnx.load`` would read gigabytes into memory to learn a few
header fields, so we walk the top-level fields and seek past the graph,
parsing only the small messages we need with onnx's own classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypedDict

if TYPE_CHECKING:
    from onnx import ValueInfoProto

IR_VERSION, PRODUCER_NAME, PRODUCER_VERSION, OPSET_IMPORT = 1, 2, 3, 8
GRAPH = 7
GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_INITIALIZER = 11, 12, 5


def _varint(handle: BinaryIO) -> int | None:
    shift = result = 0
    while True:
        byte = handle.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


class OnnxHeader(TypedDict, total=False):
    """The header fields of an ONNX file: those it sets (``opsets`` always, domain -> version)."""

    ir_version: int
    producer_name: str
    producer_version: str
    opsets: dict[str, int]


class OnnxSignature(OnnxHeader, total=False):
    """The header plus the graph's inputs and outputs (name, element type, shape)."""

    inputs: list[dict[str, object]]
    outputs: list[dict[str, object]]


def read_header(path: Path) -> OnnxHeader:
    """ir_version, producer and opsets of an ONNX file, without loading its graph."""
    found: OnnxHeader = {"opsets": {}}
    with open(path, "rb") as handle:
        for field, wire, value in _fields(handle):
            if not _header_field(found, handle, field, wire, value) and wire == 2:
                handle.seek(value, 1)
    return found


def _header_field(found: OnnxHeader, handle: BinaryIO, field: int, wire: int, value: int) -> bool:
    """Record a top-level header field into ``found`` (reading its payload); False for any other field."""
    from onnx import OperatorSetIdProto

    if wire == 0:
        if field == IR_VERSION:
            found["ir_version"] = value
        return True
    if field == OPSET_IMPORT:
        opset = OperatorSetIdProto.FromString(handle.read(value))
        found["opsets"][opset.domain or "ai.onnx"] = opset.version
        return True
    if field in (PRODUCER_NAME, PRODUCER_VERSION):
        found["producer_name" if field == PRODUCER_NAME else "producer_version"] = handle.read(value).decode()
        return True
    return False


def framework_of(path: Path) -> tuple[str | None, str | None, dict[str, str]]:
    """(framework, framework version, extra properties) of a model file; Nones if unknown."""
    if path.suffix != ".onnx":
        return None, None, {}
    try:
        header = read_header(path)
    except (ValueError, OSError, UnicodeDecodeError):
        return "onnx", None, {}
    opsets = header.get("opsets", {})
    opset = opsets.get("ai.onnx")
    extra: dict[str, str] = {}
    if "ir_version" in header:
        extra["onnx.ir_version"] = str(header["ir_version"])
    producer = f"{header.get('producer_name', '')} {header.get('producer_version', '')}".strip()
    if producer:
        extra["onnx.producer"] = producer
    if opset is not None:
        extra["onnx.opset"] = str(opset)
    return "onnx", f"opset {opset}" if opset is not None else None, extra


def _fields(handle: BinaryIO, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(field, wire type, length or value) of each field up to ``end``; length-delimited payloads are left unread."""
    while end is None or handle.tell() < end:
        key = _varint(handle)
        if key is None:
            return
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = _varint(handle)
            if value is None:
                raise ValueError("truncated file")
            yield field, wire, value
        elif wire == 1:
            handle.seek(8, 1)
        elif wire == 5:
            handle.seek(4, 1)
        elif wire == 2:
            length = _varint(handle)
            if length is None:
                raise ValueError("truncated file")
            yield field, wire, length
        else:
            raise ValueError(f"unexpected wire type {wire}")


def _tensor_type(info: ValueInfoProto) -> dict[str, object]:
    from onnx import TensorProto

    value_type = info.type
    if not value_type.HasField("tensor_type"):
        return {"name": info.name, "type": value_type.WhichOneof("value") or "unknown", "shape": None}
    tensor = value_type.tensor_type
    shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
    return {"name": info.name, "type": TensorProto.DataType.Name(tensor.elem_type).lower(), "shape": shape}


def read_signature(path: Path) -> OnnxSignature:
    """Inputs and outputs (name, element type, shape) plus the header, without reading the weights.

    Walks the graph message field by field, seeking past nodes and initializers, so a model of
    gigabytes is described in milliseconds.
    """
    from onnx import ValueInfoProto

    found: OnnxSignature = {"opsets": {}}
    inputs: list[dict[str, object]] = []
    outputs: list[dict[str, object]] = []
    initializers: set[str] = set()
    with open(path, "rb") as handle:  # one pass: the header fields and the graph's inputs and outputs
        for field, wire, length in _fields(handle):
            if _header_field(found, handle, field, wire, length) or wire != 2:
                continue
            if field != GRAPH:
                handle.seek(length, 1)
                continue
            end = handle.tell() + length
            for inner, inner_wire, inner_length in _fields(handle, end):
                if inner_wire != 2:
                    continue
                if inner in (GRAPH_INPUT, GRAPH_OUTPUT):
                    info = ValueInfoProto.FromString(handle.read(inner_length))
                    (inputs if inner == GRAPH_INPUT else outputs).append(_tensor_type(info))
                elif inner == GRAPH_INITIALIZER:
                    initializers.add(_initializer_name(handle, inner_length))
                else:
                    handle.seek(inner_length, 1)
    # before IR 4 initializers were listed as inputs too; a caller feeds only the others
    found["inputs"] = [i for i in inputs if i["name"] not in initializers]
    found["outputs"] = outputs
    return found


def _initializer_name(handle: BinaryIO, length: int) -> str:
    """The name (field 8) of a TensorProto, seeking past its data."""
    end = handle.tell() + length
    name = ""
    for field, wire, size in _fields(handle, end):
        if wire != 2:
            continue
        if field == 8:
            name = handle.read(size).decode()
        else:
            handle.seek(size, 1)
    handle.seek(end)
    return name
