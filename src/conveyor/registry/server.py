"""The registry over HTTP: a JSON API plus streamed blob transfer, behind bearer tokens.

Uploading a version takes two steps, like an OCI registry: ``PUT`` each blob
(``/api/v1/blobs/{sha256}``; the server hashes the stream and refuses a
mismatch), then ``POST`` the version's metadata, which names those blobs.
A version exists only once the second step succeeds.

Tokens (``conveyor registry token create``) have scope ``read``, ``write`` or ``admin``, each
including the ones before it.  Reads need ``read``; every change needs ``write``; relaxing a
model's signing policy needs ``admin`` (``signing_policy.py``).  Each change is done as the
request's :class:`~conveyor.registry.audit.Actor` (the token's name and scope, the client's
address), so the audit log says who made it and from where.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor import __version__
from conveyor.errors import InvalidInput, NotFound, StorageError
from conveyor.httputil import EXCEPTION_HANDLERS, error_response, guard
from conveyor.registry.access import allows
from conveyor.registry.audit import Actor
from conveyor.registry.blobs import BlobCorrupt, check_digest
from conveyor.registry.local import LocalRegistry
from conveyor.registry.records import NewVersion
from conveyor.registry.refs import check_alias, check_name, parse_version
from conveyor.registry.storage_errors import NOTHING_REGISTERED, outcome

log = logging.getLogger(__name__)
READ_METHODS = {"GET", "HEAD"}


def _json(content: Any, status: int = 200) -> Response:
    if isinstance(content, BaseModel):
        body = content.model_dump_json().encode()
    elif isinstance(content, list) and content and isinstance(content[0], BaseModel):
        body = b"[" + b",".join(item.model_dump_json().encode() for item in content) + b"]"
    else:
        body = orjson.dumps(content)
    return Response(body, status_code=status, media_type="application/json")


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` and the scope the method needs (pure ASGI)."""

    def __init__(self, app: ASGIApp, registry: LocalRegistry, required: bool) -> None:
        self.app = app
        self.registry = registry
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.required or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            response = error_response(
                401,
                "authentication required: send Authorization: Bearer <token> (CONVEYOR_TOKEN)",
                {"WWW-Authenticate": 'Bearer realm="conveyor"'},
            )
            await response(scope, receive, send)
            return
        found = await anyio.to_thread.run_sync(self.registry.tokens.scope_of, token.strip())
        if found is None:
            response = error_response(
                401, "invalid or revoked token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
            await response(scope, receive, send)
            return
        name, token_scope = found
        if scope["method"] not in READ_METHODS and not allows(token_scope, "write"):
            await error_response(403, f"token {name!r} has read scope; this request needs write")(scope, receive, send)
            return
        scope.setdefault("state", {}).update(token_name=name, token_scope=token_scope)
        await self.app(scope, receive, send)


class Api:
    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def _acting(self, request: Request) -> LocalRegistry:
        """The registry as this request's caller: changes are checked against its scope and audited as it.

        Without tokens (``--insecure-no-auth``) the caller is anonymous with write scope: it may
        change anything but a signing policy's relaxation, which needs an admin token."""
        client = request.client.host if request.client else "unknown"
        name = getattr(request.state, "token_name", None)
        scope = getattr(request.state, "token_scope", "read")
        actor = Actor(who=name, where=client, scope=scope) if name else Actor("anonymous", client, "write")
        return self.registry.acting_as(actor)

    async def _body(self, request: Request, model: type[BaseModel]) -> Any:
        raw = await request.body()
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidInput(f"invalid request body: {where}: {first['msg']}") from None

    @staticmethod
    def _version(request: Request) -> int:
        return parse_version(request.path_params["version"])

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok", "version": __version__})

    async def openapi(self, request: Request) -> Response:
        from conveyor.registry.openapi import registry_openapi

        return _json(registry_openapi())

    async def list_models(self, request: Request) -> Response:
        return _json([m.model_dump(mode="json") for m in await self._call(self.registry.list_models)])

    async def get_model(self, request: Request) -> Response:
        return _json(await self._call(self.registry.get_model, check_name(request.path_params["name"])))

    async def list_versions(self, request: Request) -> Response:
        archived = _flag(request, "archived")
        versions = await self._call(self.registry.list_versions, check_name(request.path_params["name"]), archived)
        return _json([v.model_dump(mode="json") for v in versions])

    async def create_version(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        new = await self._body(request, NewVersion)
        return _json(await self._call(self._acting(request).create_version, name, new), 201)

    async def get_version(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        return _json(await self._call(self.registry.store.get_version, name, self._version(request)))

    async def delete_version(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        return _json(await self._call(self._acting(request).delete_version, name, self._version(request)))

    async def archive_version(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        return _json(await self._call(self._acting(request).archive_version, name, self._version(request)))

    async def resolve(self, request: Request) -> Response:
        ref = request.query_params.get("ref")
        if not ref:
            raise InvalidInput("missing ?ref=name, name:version or name@alias")
        return _json(await self._call(self.registry.resolve, ref))

    async def set_tags(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        version = self._version(request) if "version" in request.path_params else None
        change = await self._body(request, TagChange)
        tags = await self._call(self._acting(request).set_tags, name, version, change.set, change.unset)
        return _json({"tags": tags})

    async def set_alias(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        alias = check_alias(request.path_params["alias"])
        move = await self._body(request, AliasMove)
        return _json(
            await self._call(self._acting(request).set_alias, name, alias, move.version, move.force, move.protect)
        )

    async def delete_alias(self, request: Request) -> Response:
        name = check_name(request.path_params["name"])
        alias = check_alias(request.path_params["alias"])
        force = _flag(request, "force")
        version = await self._call(self._acting(request).delete_alias, name, alias, force)
        return _json({"alias": alias, "version": version})

    async def head_blob(self, request: Request) -> Response:
        digest = check_digest(request.path_params["digest"])
        if not await self._call(self.registry.blobs.keep, digest):  # kept: a client skips uploading it
            return Response(status_code=404)
        size = await self._call(self.registry.blobs.size, digest)
        return Response(status_code=200, headers={"Content-Length": str(size)})

    async def get_blob(self, request: Request) -> Response:
        digest = check_digest(request.path_params["digest"])
        if not await self._call(self.registry.blobs.exists, digest):
            raise NotFound(f"blob sha256:{digest} not found")
        size = await self._call(self.registry.blobs.size, digest)
        chunks = self.registry.blobs.get(digest)
        return StreamingResponse(
            chunks,
            media_type="application/octet-stream",
            headers={"Content-Length": str(size), "X-Content-SHA256": digest},
        )

    async def put_blob(self, request: Request) -> Response:
        digest = check_digest(request.path_params["digest"])
        stream = request.stream()  # an async generator: its own iterator
        # The blob store pulls the body from worker threads: ours, or (S3) boto3's own transfer
        # threads, which are no AnyIO workers; the loop's token lets any thread call back in.
        loop = anyio.lowlevel.current_token()

        def chunks() -> Iterator[bytes]:
            while True:
                try:
                    yield anyio.from_thread.run(stream.__anext__, token=loop)
                except StopAsyncIteration:
                    return

        length = request.headers.get("content-length", "")
        try:
            with outcome(NOTHING_REGISTERED, int(length) if length.isdigit() else None):
                size = await anyio.to_thread.run_sync(self.registry.blobs.put, digest, chunks())
        except BlobCorrupt as exc:
            raise InvalidInput(f"upload rejected: {exc}") from None
        except StorageError:
            async for _ in stream:  # read the rest of the body: a client still sending it then hears why
                pass
            raise
        return _json({"sha256": digest, "size": size}, 201)


def _flag(request: Request, name: str) -> bool:
    """A yes/no query parameter: 1/true or 0/false; anything else is a mistake worth naming."""
    value = request.query_params.get(name)
    if value is None or value in ("0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise InvalidInput(f"?{name}= takes 1, true, 0 or false, not {value!r}")


def _whole_number(value: Any) -> Any:
    """JSON has one number type: 2.0 is the integer 2 (as JSON Schema says), 2.5 and "2" are not."""
    return int(value) if type(value) is float and value.is_integer() else value


# Request bodies take JSON's own types: 0 is not false and "1" is not a version number.
class TagChange(BaseModel):
    model_config = ConfigDict(strict=True)

    set: dict[str, str] = {}
    unset: list[str] = []


class AliasMove(BaseModel):
    model_config = ConfigDict(strict=True)

    version: Annotated[int, BeforeValidator(_whole_number)]
    force: bool = False
    protect: bool | None = None


def _dispatch(handlers: dict[str, Any]) -> Any:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" and "HEAD" not in handlers else request.method
        return await handlers[method](request)

    return endpoint


def create_registry_app(registry: LocalRegistry, require_auth: bool = True) -> Starlette:
    api = Api(registry)
    base = "/api/v1"
    model = base + "/models/{name}"
    version = model + "/versions/{version}"
    table = [
        ("/healthz", api.health, ["GET"]),
        ("/openapi.json", api.openapi, ["GET"]),
        (base + "/models", api.list_models, ["GET"]),
        (model, api.get_model, ["GET"]),
        (model + "/versions", api.list_versions, ["GET"]),
        (model + "/versions", api.create_version, ["POST"]),
        (version, api.get_version, ["GET"]),
        (version, api.delete_version, ["DELETE"]),
        (version + "/archive", api.archive_version, ["POST"]),
        (model + "/tags", api.set_tags, ["PATCH"]),
        (version + "/tags", api.set_tags, ["PATCH"]),
        (model + "/aliases/{alias}", api.set_alias, ["PUT"]),
        (model + "/aliases/{alias}", api.delete_alias, ["DELETE"]),
        (base + "/resolve", api.resolve, ["GET"]),
        (base + "/blobs/{digest}", api.get_blob, ["GET"]),
        (base + "/blobs/{digest}", api.head_blob, ["HEAD"]),
        (base + "/blobs/{digest}", api.put_blob, ["PUT"]),
    ]
    # One route per path, dispatching on the method, so a 405's Allow names every method the path has.
    by_path: dict[str, dict[str, Any]] = {}
    for path, handler, methods in table:
        for method in methods:
            by_path.setdefault(path, {})[method] = guard(handler)
    routes = [Route(path, _dispatch(handlers), methods=list(handlers)) for path, handlers in by_path.items()]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    app.add_middleware(TokenAuth, registry=registry, required=require_auth)
    return app
