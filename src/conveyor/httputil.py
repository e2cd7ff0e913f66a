"""HTTP pieces shared by the model server and the registry server: JSON errors, never tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from conveyor.errors import ClientError, StorageError

log = logging.getLogger("conveyor.http")

Handler = Callable[[Request], Awaitable[Response]]


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": message}), status_code=status, media_type="application/json", headers=headers
    )


def guard(handler: Handler) -> Handler:
    """Turn ClientError (and storage trouble: 507, 503) into its JSON answer, and our own faults into a 500, without
    Starlette's exception machinery."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except (ClientError, StorageError) as exc:
            return error_response(exc.status, exc.message)
        except Exception as exc:
            # Answered here, not by Starlette's ServerErrorMiddleware: that one re-raises after its 500,
            # and uvicorn then drops the connection, so a keep-alive client's next request is reset.
            return await server_error(request, exc)

    guarded.__name__ = handler.__name__
    return guarded


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) as JSON."""
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"no route {request.url.path}",
        405: f"method {request.method} not allowed on {request.url.path}",
    }
    # Starlette puts ``Allow`` on its 405s (RFC 9110 requires it); keep whatever headers it set.
    return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)), exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Our own faults: logged with the traceback, answered with a plain 500 (storage trouble: its status and line)."""
    if isinstance(exc, StorageError):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(exc.status, exc.message)
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


EXCEPTION_HANDLERS = {HTTPException: http_error, Exception: server_error}
