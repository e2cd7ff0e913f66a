"""Framework facts read from a model file: for ONNX, the opset and the producer.

An ONNX file is one protobuf ``ModelProto`` whose graph (field 7) holds the
weights.  ``onnx.load`` would read gigabytes into memory to learn a few
header fields, so we walk the top-level fields and seek past the graph,
decoding only the few small messages we need (an operator set; an input's name, element
type and shape) from their field numbers in ``onnx.proto``.  Those numbers are ONNX's file
format, fixed since its first release; decoding them here keeps the ``onnx`` package (48 MB
with ml_dtypes) out of the core install, which registers and serves without it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TypedDict

IR_VERSION, PRODUCER_NAME, PRODUCER_VERSION, OPSET_IMPORT = 1, 2, 3, 8
GRAPH = 7
GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_INITIALIZER, GRAPH_NODE = 11, 12, 5, 1
# TensorProto: name, external_data (key/value entries), data_location (1: EXTERNAL); a node's attributes,
# and in an AttributeProto a tensor (t), tensors, a subgraph (g) and subgraphs
TENSOR_NAME, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 8, 13, 14
NODE_ATTRIBUTE, ATTRIBUTE_TENSORS, ATTRIBUTE_GRAPHS = 5, (5, 10), (6, 11)
# OperatorSetIdProto: domain, version; ValueInfoProto: name, type
OPSET_DOMAIN, OPSET_VERSION = 1, 2
VALUE_NAME, VALUE_TYPE = 1, 2
# TypeProto's one-of: 1 a tensor, else these (by the names onnx's WhichOneof("value") gives)
TYPE_KINDS = {4: "sequence_type", 5: "map_type", 7: "opaque_type", 8: "sparse_tensor_type", 9: "optional_type"}
TENSOR_ELEM_TYPE, TENSOR_SHAPE, SHAPE_DIM, DIM_VALUE, DIM_PARAM = 1, 2, 1, 1, 2
# TensorProto.DataType, lower-cased as onnx's DataType.Name(...).lower() gives them
ELEM_TYPES = [
    "undefined",
    "float",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "int32",
    "int64",
    "string",
    "bool",
    "float16",
    "double",
    "uint32",
    "uint64",
    "complex64",
    "complex128",
    "bfloat16",
    "float8e4m3fn",
    "float8e4m3fnuz",
    "float8e5m2",
    "float8e5m2fnuz",
    "uint4",
    "int4",
    "float4e2m1",
    "float8e8m0",
    "uint2",
    "int2",
    "float6e2m3",
    "float6e3m2",
]


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
    if wire == 0:
        if field == IR_VERSION:
            found["ir_version"] = value
        return True
    if field == OPSET_IMPORT:
        opset = _decoded(handle.read(value))
        found["opsets"][_text(opset, OPSET_DOMAIN) or "ai.onnx"] = _int64(_last(opset, OPSET_VERSION, 0))
        return True
    if field in (PRODUCER_NAME, PRODUCER_VERSION):
        found["producer_name" if field == PRODUCER_NAME else "producer_version"] = handle.read(value).decode()
        return True
    return False


def framework_of(path: Path) -> tuple[str | None, str | None, dict[str, str]]:
    """(framework, framework version, extra properties) of a model file; Nones if unknown."""
    if path.suffix == ".gguf":  # llama.cpp's format: its magic, then the format's version
        with path.open("rb") as handle:
            head = handle.read(8)
        return ("gguf", f"v{int.from_bytes(head[4:8], 'little')}", {}) if head[:4] == b"GGUF" else (None, None, {})
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


Fields = dict[int, list[int | bytes]]


def _decoded(data: bytes) -> Fields:
    """A small message's fields: number -> values (varints as ints, length-delimited as bytes)."""
    handle = io.BytesIO(data)
    fields: Fields = {}
    for field, wire, value in _fields(handle, len(data)):
        fields.setdefault(field, []).append(handle.read(value) if wire == 2 else value)
    return fields


def _last(fields: Fields, number: int, default: int | bytes) -> int | bytes:
    """The field's value as protobuf reads it (the last one wins), else the default."""
    return fields.get(number, [default])[-1]


def _int64(value: int | bytes) -> int:
    """A varint as protobuf's int64 reads it (a negative number is ten bytes of two's complement)."""
    number = value if isinstance(value, int) else 0
    return number - (1 << 64) if number >= 1 << 63 else number


def _text(fields: Fields, number: int) -> str:
    value = _last(fields, number, b"")
    return value.decode() if isinstance(value, bytes) else ""


def _message(fields: Fields, number: int) -> Fields:
    value = _last(fields, number, b"")
    return _decoded(value) if isinstance(value, bytes) else {}


def _tensor_type(data: bytes) -> dict[str, object]:
    """A ValueInfoProto as name, element type and shape (dimension names, sizes, or "?")."""
    info = _decoded(data)
    value_type = _message(info, VALUE_TYPE)
    if 1 not in value_type:  # not a tensor: name the kind of value, as onnx's WhichOneof does
        kind = next((TYPE_KINDS[f] for f in value_type if f in TYPE_KINDS), "unknown")
        return {"name": _text(info, VALUE_NAME), "type": kind, "shape": None}
    tensor = _message(value_type, 1)
    shape: list[object] = []
    for raw in _message(tensor, TENSOR_SHAPE).get(SHAPE_DIM, []):
        dim = _decoded(raw) if isinstance(raw, bytes) else {}
        shape.append(_text(dim, DIM_PARAM) or (_int64(_last(dim, DIM_VALUE, 0)) if DIM_VALUE in dim else "?"))
    elem = _last(tensor, TENSOR_ELEM_TYPE, 0)
    kind = ELEM_TYPES[elem] if isinstance(elem, int) and elem < len(ELEM_TYPES) else f"elem_type {elem!r}"
    return {"name": _text(info, VALUE_NAME), "type": kind, "shape": shape}


def read_signature(path: Path) -> OnnxSignature:
    """Inputs and outputs (name, element type, shape) plus the header, without reading the weights.

    Walks the graph message field by field, seeking past nodes and initializers, so a model of
    gigabytes is described in milliseconds.
    """
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
                    info = _tensor_type(handle.read(inner_length))
                    (inputs if inner == GRAPH_INPUT else outputs).append(info)
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


def external_data(path: Path) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor whose data lives in a file beside the model.

    Initializers and the tensors in nodes' attributes, subgraphs included; their data is skipped."""
    found: list[tuple[str, str]] = []
    with open(path, "rb") as handle:
        for field, wire, length in _fields(handle):
            if wire != 2:
                continue
            end = handle.tell() + length
            if field == GRAPH:
                _graph_external(handle, end, found)
            handle.seek(end)
    return found


def _graph_external(handle: BinaryIO, end: int, found: list[tuple[str, str]]) -> None:
    for field, wire, length in _fields(handle, end):
        if wire != 2:
            continue
        stop = handle.tell() + length
        if field == GRAPH_INITIALIZER:
            _tensor_external(handle, stop, found)
        elif field == GRAPH_NODE:
            for inner, inner_wire, inner_length in _fields(handle, stop):
                if inner_wire == 2:
                    attribute_end = handle.tell() + inner_length
                    if inner == NODE_ATTRIBUTE:
                        _attribute_external(handle, attribute_end, found)
                    handle.seek(attribute_end)
        handle.seek(stop)


def _attribute_external(handle: BinaryIO, end: int, found: list[tuple[str, str]]) -> None:
    for field, wire, length in _fields(handle, end):
        if wire != 2:
            continue
        stop = handle.tell() + length
        if field in ATTRIBUTE_TENSORS:
            _tensor_external(handle, stop, found)
        elif field in ATTRIBUTE_GRAPHS:
            _graph_external(handle, stop, found)
        handle.seek(stop)


def _tensor_external(handle: BinaryIO, end: int, found: list[tuple[str, str]]) -> None:
    name, location, external = "", None, False
    for field, wire, length in _fields(handle, end):
        if wire == 0:
            external = external or (field == TENSOR_DATA_LOCATION and length == 1)
        elif field == TENSOR_NAME:
            name = handle.read(length).decode(errors="replace")
        elif field == TENSOR_EXTERNAL_DATA:
            entry = _decoded(handle.read(length))
            if _text(entry, 1) == "location":
                location = _text(entry, 2)
        else:
            handle.seek(length, 1)
    if external or location is not None:
        found.append((name, location or ""))
