"""The HTTP floor: the same server stack as ``conveyor serve`` (uvicorn, uvloop, httptools) answering
a constant JSON body after reading the request, with no parsing and no model.

What a request costs before any serving code runs; a tabular model's onnxruntime call (a few
microseconds) is far below it, so the floor plus that call is the honest limit for one request
over HTTP:

    python -m uvicorn benchmarks.tabular.floor:app --loop uvloop --http httptools --port 8000
"""

from __future__ import annotations

from typing import Any

ANSWER = b'{"label":"high"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
