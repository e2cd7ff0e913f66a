"""The dashboard's Starlette application: routes, templates, live streams and error pages.

Handlers are thin methods of :class:`Endpoints`, listed once in :func:`routes`: each asks a
``*_pages`` module for a template context (in a worker thread, since the registry and the status
files are blocking I/O) and renders it. Errors are Conveyor's
named errors, answered once here: an HTML page for a browser, ``{"error": ...}`` for a client
that asks for JSON, the status code either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from html import escape
from pathlib import Path
from typing import Any, ClassVar

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from conveyor.errors import ClientError, ConveyorError, Unauthorized
from conveyor.extras import needs
from conveyor.redaction import without_credentials
from conveyor.registry.audit import one_line
from conveyor.registry.protocol import Registry
from conveyor.sizes import human_size
from conveyor.ui import audit_pages, pipeline_pages, registry_pages, rollout_pages
from conveyor.ui.auth import Auth, SessionGuard, csrf_token
from conveyor.ui.settings import DashboardSessionSettings
from conveyor.ui.traffic_pages import TrafficSettings, traffic_panel

with needs("ui", "the dashboard (conveyor ui)"):
    # Starlette imports these only when a page first uses them: checked as the dashboard is imported
    import jinja2  # noqa: F401
    import python_multipart  # noqa: F401
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
log = logging.getLogger("conveyor.ui")
LIVE_EVERY_S = 1.0
KEEPALIVE_S = 15.0


def _ago(value: Any) -> str:
    if value is None:
        return "-"
    seconds = time.time() - (value.timestamp() if hasattr(value, "timestamp") else float(value))
    if seconds < 60:
        return f"{max(seconds, 0):.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters.update(ago=_ago, size=human_size, compact=one_line, without_credentials=without_credentials)
    templates.env.globals.update(outcome_class={"successful": "ok", "failed": "bad", "inconclusive": "warn"})
    return templates


class Endpoints:
    """The dashboard's handlers over one registry (as MLServer's ``rest/endpoints.py``): each reads
    the request, asks a ``*_pages`` module for a context in a worker thread and renders it."""

    def __init__(
        self,
        registry: Registry,
        tokens: Any | None,
        require_login: bool,
        root_path: str,
        traffic: TrafficSettings | None = None,
        sessions: DashboardSessionSettings | None = None,
    ) -> None:
        self.registry = registry
        self.traffic = traffic or TrafficSettings()
        self.root = root_path
        self.templates = make_templates()
        self.auth = Auth(tokens, require_login, sessions)
        self.signatures = registry_pages.Signatures()

    # ---- rendering ----------------------------------------------------------------------------

    @staticmethod
    def wants_json(request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return "application/json" in accept and "text/html" not in accept

    def base_context(self, request: Request, csrf: str) -> dict[str, Any]:
        """What every page and fragment shows about who is looking (the token store is asked once)."""
        viewer = self.auth.viewer(request)
        tokens_exist = self.auth.tokens_exist
        return {
            "viewer": viewer,
            "csrf": csrf,
            "tokens_exist": tokens_exist,
            "can_act": viewer.can_write or not self.auth.login_needed(tokens_exist),
            "root": self.root,
        }

    def render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        base = self.base_context(request, csrf_token(request))
        return self.templates.TemplateResponse(request, template, {**base, **context}, status_code=status)

    def page(self, template: str, build: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Any]:
        """An endpoint that renders ``template`` with ``build(request)``, for readers only."""

        async def endpoint(request: Request) -> Response:
            self.auth.check_read(request)
            context = await anyio.to_thread.run_sync(build, request)
            return self.render(request, template, context)

        return endpoint

    def fragment(self, template: str, context: Callable[[], dict[str, Any]], request: Request) -> Callable[[], str]:
        def build() -> str:
            base = self.base_context(request, request.session.get("csrf", ""))
            return self.templates.get_template(template).render({**base, "request": request, **context()})

        return build

    async def stream(self, request: Request, build: Callable[[], str]) -> Response:
        """Server-sent events: the fragment each time it changes (checked every second), comments to keep alive.

        Where reading needs a login, the session's token is checked again each time: revoked, the
        stream says so and ends."""
        self.auth.check_read(request)
        watcher = dict(request.session) if self.auth.require_login else None

        async def events() -> AsyncIterator[bytes]:
            last, quiet_since = "", time.monotonic()
            while not await request.is_disconnected():
                ended = await anyio.to_thread.run_sync(self.auth.token_problem, watcher) if watcher else None
                if ended:
                    yield f'event: update\ndata: <p class="flash bad">{escape(ended)}</p>\n\n'.encode()
                    return
                try:
                    html = await anyio.to_thread.run_sync(build)
                except ConveyorError as exc:
                    html = f'<p class="flash bad">{exc}</p>'
                if html != last:
                    last, quiet_since = html, time.monotonic()
                    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
                    yield f"event: update\n{data}\n\n".encode()
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield b": keep-alive\n\n"
                await asyncio.sleep(LIVE_EVERY_S)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    # ---- errors -------------------------------------------------------------------------------

    async def error(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ConveyorError):
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        status = exc.status if isinstance(exc, ClientError) else 500
        message = str(exc) if isinstance(exc, ConveyorError) else "internal error: see the dashboard's log"
        if self.wants_json(request) or request.headers.get("hx-request"):
            return JSONResponse({"error": message}, status_code=status)
        if isinstance(exc, Unauthorized) and request.method == "GET":  # the login page, saying why
            return self.render(request, "login.html", {"next": request.url.path, "message": message}, status)
        return self.render(request, "error.html", {"status": status, "message": message}, status)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", None) or "not found"
        status = getattr(exc, "status_code", 404)
        if self.wants_json(request):
            return JSONResponse({"error": str(detail)}, status_code=status)
        return self.render(request, "error.html", {"status": status, "message": str(detail)}, status)

    # ---- sessions -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{self.root}/models", status_code=303)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html", {"next": request.query_params.get("next", f"{self.root}/models")})

    async def login(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        target = str(form.get("next") or f"{self.root}/models")
        if not target.startswith("/") or target.startswith("//"):
            target = f"{self.root}/models"  # never redirect off this site
        if not self.auth.csrf_ok(request, form.get("csrf")):  # a login forged by another site fixes no session
            message = "the login form has expired or came from another site: reload the page and log in again"
            return self.render(request, "login.html", {"next": target, "message": message}, 403)
        try:
            await anyio.to_thread.run_sync(self.auth.login, request, token)
        except ClientError as exc:
            return self.render(request, "login.html", {"next": target, "message": str(exc)}, exc.status)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if self.auth.csrf_ok(request, form.get("csrf")):
            request.session.clear()
        return RedirectResponse(f"{self.root}/models", status_code=303)

    # ---- pages' contexts ----------------------------------------------------------------------

    def models(self, request: Request) -> dict[str, Any]:
        return registry_pages.models_context(self.registry, request)

    def model(self, request: Request) -> dict[str, Any]:
        return registry_pages.model_context(self.registry, request, request.path_params["name"])

    def version(self, request: Request) -> dict[str, Any]:
        name, version = request.path_params["name"], request.path_params["version"]
        context = registry_pages.version_context(self.registry, self.signatures, name, version)
        return {**context, "traffic": traffic_panel(self.registry, context["version"].ref, self.traffic)}

    @staticmethod
    def rollouts(request: Request) -> dict[str, Any]:
        return rollout_pages.rollouts_context()

    @staticmethod
    def rollout_now(request: Request) -> dict[str, Any]:
        return rollout_pages.rollout_context(request.path_params["service"])

    def rollout(self, request: Request) -> dict[str, Any]:
        """The page: the live part, and below it the served-traffic panels of both versions."""
        context = self.rollout_now(request)
        status = context["status"]
        refs = dict.fromkeys(b.version for b in (status.canary, status.stable) if ":" in b.version)
        return {**context, "traffic": [traffic_panel(self.registry, ref, self.traffic) for ref in refs]}

    def audit(self, request: Request) -> dict[str, Any]:
        return audit_pages.audit_context(self.registry, request)

    @staticmethod
    def runs(request: Request) -> dict[str, Any]:
        return pipeline_pages.runs_context(request.query_params.get("pipeline") or None)

    @staticmethod
    def run(request: Request) -> dict[str, Any]:
        return pipeline_pages.run_context(request.path_params["run_id"])

    # ---- rollouts and runs, live --------------------------------------------------------------

    async def rollout_action(self, request: Request) -> Response:
        service, action = request.path_params["service"], request.path_params["action"]
        form = dict(await request.form())
        viewer = self.auth.check_write(request, form)
        who = viewer.name or "an anonymous user"
        reason = str(form.get("reason") or "").strip() or f"from the dashboard by {who}"
        message = await anyio.to_thread.run_sync(rollout_pages.act, service, action, reason)
        if request.headers.get("hx-request"):
            context = await anyio.to_thread.run_sync(rollout_pages.rollout_context, service)
            return self.render(request, "_rollout_live.html", {**context, "flash": message})
        return RedirectResponse(f"{self.root}/rollouts/{service}", status_code=303)

    async def audit_page(self, request: Request) -> Response:
        self.auth.check_admin(request)
        context = await anyio.to_thread.run_sync(self.audit, request)
        return self.render(request, "audit.html", context)

    async def rollout_live(self, request: Request) -> Response:
        service = request.path_params["service"]
        await anyio.to_thread.run_sync(rollout_pages.load_status, service)  # 404 before the stream starts
        build = self.fragment("_rollout_live.html", lambda: rollout_pages.rollout_context(service), request)
        return await self.stream(request, build)

    async def run_live(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await anyio.to_thread.run_sync(pipeline_pages.run_context, run_id)
        build = self.fragment("_run_live.html", lambda: pipeline_pages.run_context(run_id), request)
        return await self.stream(request, build)

    async def step_log(self, request: Request) -> Response:
        self.auth.check_read(request)
        from conveyor.errors import NotFound
        from conveyor.pipeline.history import load_run

        record = await anyio.to_thread.run_sync(load_run, request.path_params["run_id"])
        step = request.path_params["step"]
        if step not in record.run.steps:
            raise NotFound(f"run {record.id} has no step {step!r}")
        path = record.log_path(step)
        text = path.read_text(errors="replace") if path.is_file() else ""
        return Response(text, media_type="text/plain; charset=utf-8")


def routes(e: Endpoints) -> list[Route | Mount]:
    """The dashboard's route table: every URL it answers, in one place."""
    return [
        Route("/", e.home),
        Route("/healthz", e.health),
        Route("/login", e.login_form, methods=["GET"]),
        Route("/login", e.login, methods=["POST"]),
        Route("/logout", e.logout, methods=["POST"]),
        Route("/models", e.page("models.html", e.models)),
        Route("/models/{name}", e.page("model.html", e.model)),
        Route("/models/{name}/versions/{version}", e.page("version.html", e.version)),
        Route("/rollouts", e.page("rollouts.html", e.rollouts)),
        Route("/rollouts/{service}", e.page("rollout.html", e.rollout)),
        Route("/rollouts/{service}/live", e.rollout_live),
        Route("/rollouts/{service}/fragment", e.page("_rollout_live.html", e.rollout_now)),
        Route("/rollouts/{service}/actions/{action}", e.rollout_action, methods=["POST"]),
        Route("/audit", e.audit_page),
        Route("/pipelines", e.page("pipelines.html", e.runs)),
        Route("/pipelines/runs/{run_id}", e.page("run.html", e.run)),
        Route("/pipelines/runs/{run_id}/live", e.run_live),
        Route("/pipelines/runs/{run_id}/steps/{step}/log", e.step_log),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def create_app(
    registry: Registry,
    *,
    tokens: Any | None = None,
    require_login: bool = False,
    secret: str | None = None,
    root_path: str = "",
    traffic: TrafficSettings | None = None,
    sessions: DashboardSessionSettings | None = None,
) -> Starlette:
    """The dashboard over ``registry``; ``tokens`` is the registry's token store (None: no logins);
    ``traffic`` says where the payload log is, for the served-traffic panels; ``sessions`` how long
    a login lasts."""
    sessions = sessions or DashboardSessionSettings()
    endpoints = Endpoints(registry, tokens, require_login, root_path, traffic, sessions)
    session_secret = secret or os.environ.get("CONVEYOR_UI_SECRET") or secrets.token_urlsafe(32)
    session = Middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie="conveyor_ui",
        same_site="strict",
        https_only=False,
        max_age=round(sessions.session_max_hours * 3600),
    )
    handlers = {ConveyorError: endpoints.error, 404: endpoints.not_found, 405: endpoints.not_found}
    return Starlette(
        routes=routes(endpoints),
        middleware=[session, Middleware(SessionGuard, auth=endpoints.auth), Middleware(SecurityHeaders)],
        exception_handlers={**handlers, Exception: endpoints.error},
    )


class SecurityHeaders:
    """No framing (clickjacking), no sniffing, scripts only from this site (pure ASGI)."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (
            b"content-security-policy",
            b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def with_dashboard(
    app: Any, registry: Any, require_login: bool, prefix: str = "/ui", sessions: DashboardSessionSettings | None = None
) -> Starlette:
    """``app`` (the registry server) with the dashboard mounted at ``prefix``, sharing its token store."""
    dashboard = create_app(
        registry, tokens=registry.tokens, require_login=require_login, root_path=prefix, sessions=sessions
    )
    return Starlette(routes=[Mount(prefix, dashboard), Mount("", app)])
