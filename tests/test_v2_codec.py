"""The Open Inference Protocol v2 codec: binary tensors, framing errors, typed data."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from conveyor.errors import ClientError
from conveyor.serving.v2 import decode_request, encode_response


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
