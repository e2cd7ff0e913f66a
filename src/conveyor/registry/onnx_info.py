"""Framework facts read from a model file: for ONNX, the opset and the producer.

An ONNX file is one protobuf ``ModelProto`` whose graph (field 7) holds the
weights.  ``onnx.load`` would read gigabytes into memory to learn a few
header fields, so we walk the top-level fields and seek past the graph,
parsing only the small messages we need with onnx's own classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

IR_VERSION, PRODUCER_NAME, PRODUCER_VERSION, OPSET_IMPORT = 1, 2, 3, 8


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


def read_header(path: Path) -> dict[str, object]:
    """ir_version, producer and opsets of an ONNX file, without loading its graph."""
    from onnx import OperatorSetIdProto

    found: dict[str, object] = {"opsets": {}}
    with open(path, "rb") as handle:
        while (key := _varint(handle)) is not None:
            field, wire = key >> 3, key & 7
            if wire == 0:
                value = _varint(handle)
                if field == IR_VERSION:
                    found["ir_version"] = value
            elif wire == 1:
                handle.seek(8, 1)
            elif wire == 5:
                handle.seek(4, 1)
            elif wire == 2:
                length = _varint(handle)
                if length is None:
                    raise ValueError("truncated file")
                if field in (PRODUCER_NAME, PRODUCER_VERSION, OPSET_IMPORT):
                    data = handle.read(length)
                    if field == OPSET_IMPORT:
                        opset = OperatorSetIdProto.FromString(data)
                        found["opsets"][opset.domain or "ai.onnx"] = opset.version  # type: ignore[index]
                    else:
                        found["producer_name" if field == PRODUCER_NAME else "producer_version"] = data.decode()
                else:
                    handle.seek(length, 1)
            else:
                raise ValueError(f"unexpected wire type {wire}")
    return found


def framework_of(path: Path) -> tuple[str | None, str | None, dict[str, str]]:
    """(framework, framework version, extra properties) of a model file; Nones if unknown."""
    if path.suffix != ".onnx":
        return None, None, {}
    try:
        header = read_header(path)
    except (ValueError, OSError, UnicodeDecodeError):
        return "onnx", None, {}
    opsets: dict[str, int] = header.get("opsets", {})  # type: ignore[assignment]
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
