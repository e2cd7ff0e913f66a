"""The nginx configuration that carries the router's traffic: the routing table rendered as nginx directives.

Why nginx at all: the embedded data plane is Python on the request path, and on a busy 2-core
machine it cost +1 ms p50 at concurrency 1 and a fifth of the throughput at concurrency 8 (its
CPU is taken from the model beside it); nginx in front of the same server costs neither
(docs/benchmarks.md#router).  So with ``--data-plane nginx`` the table is rendered here and nginx
moves the bytes; the control plane (``router/nginx.py``) re-renders and reloads it on every change.

How the table maps onto nginx, request by request:

* **pins**: a ``map`` from ``X-Conveyor-Version`` (a backend's name or version) to that backend's
  pin group (one server, no retry, whatever its health: as the embedded router);
* **weights and stickiness**: ``split_clients`` over the healthy backends' weights, keyed by the
  sticky header's value, or by ``$request_id`` (random) when there is none;
* **retry**: each backend's group lists the other healthy backends as ``backup`` servers, so a
  connection that fails before any answer is tried once more elsewhere (``proxy_next_upstream``);
* **ejection**: the control plane probes the backends and renders an ejected one out of the split
  (its weight spread over the others, as ``routing.pick`` does); nginx's own ``max_fails`` takes a
  refusing server out at once until then;
* **the model-aware path**: while the table mirrors or the router logs payloads, every request
  goes to the control plane's Python data plane instead, which reads the answers;
* **counting**: predictions (``POST``) are logged per request over syslog (UDP, loopback) to the
  control plane, which adds them to the same counters ``/_conveyor/stats`` and ``/metrics`` show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import InvalidInput
from conveyor.router.routing import PIN_HEADER, SERVED_BY_HEADER, BackendSpec, RouteTable

#: one log line per proxied POST, fields split by "|"; the path goes last (it may hold anything)
LOG_FIELDS = (
    "conveyor_route",
    "upstream_addr",
    "upstream_status",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_response_time",
    "uri",
)
LOG_TAG = "conveyor"
SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$")  # a version nginx's map can hold verbatim
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True)
class Listen:
    """Where nginx and its helpers are: the client address, the control plane, the log and status ports."""

    host: str
    port: int
    control_port: int  # the Python control plane (admin API, model-aware data plane), on 127.0.0.1
    log_port: int  # the control plane's syslog receiver (UDP, 127.0.0.1)
    status_port: int  # nginx answers its config generation here (127.0.0.1), to tell a reload is live
    runtime: Path  # the rendered config, pid file and error log (kept across restarts, beside the routes)
    temp: Path  # request and answer bodies too large for memory (nginx's workers write here)
    tls_cert: str | None = None
    tls_key: str | None = None


@dataclass(frozen=True)
class Limits:
    timeout: float = 60.0
    max_body_bytes: int = 16 * 1024 * 1024
    retry: bool = True


def check_for_nginx(table: RouteTable) -> None:
    """Refuse, by name, what the nginx data plane cannot carry (the embedded one can)."""
    for backend in table.backends:
        if not backend.url.startswith("http://"):
            raise InvalidInput(
                f"backend {backend.name}: the nginx data plane proxies to http:// backends only "
                "(use --data-plane embedded for https backends)"
            )
        if "@" in backend.url:
            raise InvalidInput(
                f"backend {backend.name}: the nginx data plane does not carry credentials in backend URLs "
                "(use --data-plane embedded)"
            )
        if backend.version and not SAFE_LABEL.match(backend.version):
            raise InvalidInput(
                f"backend {backend.name}: version {backend.version!r} has characters the nginx data plane "
                "cannot match a pin on (letters, digits and _.:@+- only)"
            )
    if table.sticky_header is not None and not HEADER_NAME.match(table.sticky_header):
        raise InvalidInput(f"sticky header {table.sticky_header!r}: letters, digits and '-' only for nginx")


def model_aware(table: RouteTable, payload_log: bool) -> bool:
    """Whether requests need the Python data plane: it must read answers to mirror, compare or log them."""
    return payload_log or (table.mirror_percent > 0 and table.mirror_to is not None)


def live_weights(table: RouteTable, healthy: set[str]) -> list[tuple[BackendSpec, float]]:
    """The split nginx applies: ``routing.pick``'s rule (ejected backends' weight spread over the others)."""
    weighted = [(b, b.weight) for b in table.backends if b.weight > 0 and b.name in healthy]
    if not weighted:
        chosen = [b for b in table.backends if b.name in healthy] or [b for b in table.backends if b.weight > 0]
        weighted = [(b, 1.0) for b in chosen]
    return weighted


def _host_port(url: str) -> str:
    return url.split("://", 1)[1]


def group(backend: BackendSpec, kind: str) -> str:
    return f"conveyor_{kind}_{backend.name.replace('.', '_').replace('-', '_')}"


def _split(weighted: list[tuple[BackendSpec, float]]) -> list[str]:
    """``split_clients`` lines: percentages to two decimals (nginx's precision), the last one ``*``."""
    total = sum(weight for _, weight in weighted)
    lines, given = [], 0.0
    for backend, weight in weighted[:-1]:
        share = round(weight / total * 100, 2)
        if share > 0:
            lines.append(f"        {share:.2f}% {group(backend, 'b')};")
            given += share
    lines.append(f"        * {group(weighted[-1][0], 'b')};")
    return lines


def render(
    table: RouteTable, healthy: set[str], listen: Listen, limits: Limits, generation: int, payload_log: bool = False
) -> str:
    """nginx.conf for ``table`` with the ``healthy`` backends in the split (``generation`` says which render)."""
    check_for_nginx(table)
    run = listen.runtime
    seconds = f"{max(1, round(limits.timeout))}s"
    lines = [
        f"# rendered by conveyor router (generation {generation}); every routing change rewrites it",
        "worker_processes 1;",
        "daemon off;",
        f"pid {run}/nginx.pid;",
        f"error_log {run}/error.log warn;",
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
        f"    client_body_temp_path {listen.temp}/body;",
        f"    proxy_temp_path {listen.temp}/proxy;",
        f"    fastcgi_temp_path {listen.temp}/fastcgi;",
        f"    uwsgi_temp_path {listen.temp}/uwsgi;",
        f"    scgi_temp_path {listen.temp}/scgi;",
        f"    client_max_body_size {limits.max_body_bytes};",
        "    client_body_buffer_size 64k;",
        "    keepalive_timeout 30s;",
        "    keepalive_requests 100000;",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_connect_timeout 5s;",
        f"    proxy_read_timeout {seconds};",
        f"    proxy_send_timeout {seconds};",
        "    upstream conveyor_control {",
        f"        server 127.0.0.1:{listen.control_port};",
        "        keepalive 16;",
        "    }",
    ]
    location = _traffic(table, healthy, listen, limits, payload_log, lines)
    listen_line = f"{listen.host}:{listen.port}" if ":" not in listen.host else f"[{listen.host}]:{listen.port}"
    ssl = ""
    if listen.tls_cert and listen.tls_key:
        ssl = " ssl"
    lines += [
        "    server {",
        f"        listen {listen_line}{ssl};",
    ]
    if ssl:
        lines += [f"        ssl_certificate {listen.tls_cert};", f"        ssl_certificate_key {listen.tls_key};"]
    lines += [
        "        error_page 413 = @too_large;",
        "        location /_conveyor/ { proxy_pass http://conveyor_control; error_page 502 504 = @control_down; }",
        "        location = /metrics { proxy_pass http://conveyor_control; error_page 502 504 = @control_down; }",
        *location,
        "        location @too_large {",
        "            default_type application/json;",
        f'            return 413 \'{{"error": "request body over {limits.max_body_bytes} bytes"}}\';',
        "        }",
        "        location @unreachable {",
        "            default_type application/json;",
        '            return 502 \'{"error": "no backend could be reached"}\';',
        "        }",
        "        location @control_down {",
        "            default_type application/json;",
        '            return 502 \'{"error": "the control plane of the router is down (nginx keeps its routes)"}\';',
        "        }",
        "        location @timeout {",
        "            default_type application/json;",
        '            return 504 \'{"error": "the backend did not answer in time"}\';',
        "        }",
        "    }",
        "    server {",
        f"        listen 127.0.0.1:{listen.status_port};",
        f'        location = /generation {{ return 200 "{generation}"; }}',
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _traffic(
    table: RouteTable, healthy: set[str], listen: Listen, limits: Limits, payload_log: bool, lines: list[str]
) -> list[str]:
    """The upstreams and maps of the split (appended to ``lines``) and the ``location /`` that uses them."""
    if not table.backends:
        return [
            "        location / {",
            "            default_type application/json;",
            '            return 503 \'{"error": "the router has no backend to send this request to"}\';',
            "        }",
        ]
    if model_aware(table, payload_log):
        return ["        location / { proxy_pass http://conveyor_control; error_page 502 504 = @control_down; }"]
    weighted = live_weights(table, healthy)
    fallbacks = sorted((b for b in table.backends if b.name in healthy), key=lambda b: -b.weight)
    for backend in table.backends:
        # a backend's weighted group: itself, then the others healthy as backups (the one retry)
        lines += [
            f"    upstream {group(backend, 'b')} {{",
            f"        server {_host_port(backend.url)} max_fails=1 fail_timeout=2s;",
        ]
        if limits.retry:
            lines += [f"        server {_host_port(b.url)} backup;" for b in fallbacks if b is not backend]
        lines += ["        keepalive 64;", "    }"]
        pinned = _host_port(backend.url)
        lines += [
            f"    upstream {group(backend, 'p')} {{",
            f"        server {pinned};",
            "        keepalive 16;",
            "    }",
        ]
    pins = {}
    for backend in reversed(table.backends):  # the first backend of a shared version wins, as in routing.pick
        if backend.version:
            pins[backend.version] = group(backend, "p")
    for backend in reversed(table.backends):
        pins[backend.name] = group(backend, "p")
    pin_variable = "$http_" + PIN_HEADER.replace("-", "_")
    lines += [f"    map {pin_variable} $conveyor_pinned {{", '        default "";']
    lines += [f'        "{label}" {group};' for label, group in sorted(pins.items())]
    lines += ["    }"]
    if len(weighted) == 1:
        lines += ["    map $conveyor_pinned $conveyor_route {", f"        default {group(weighted[0][0], 'b')};"]
    else:
        key = "$request_id"
        if table.sticky_header:
            sticky = "$http_" + table.sticky_header.replace("-", "_")
            lines += [f"    map {sticky} $conveyor_sticky_key {{", "        default $request_id;"]
            lines += [f'        "~." {sticky};', "    }"]
            key = "$conveyor_sticky_key"
        lines += [f'    split_clients "{key}" $conveyor_weighted {{', *_split(weighted), "    }"]
        lines += ["    map $conveyor_pinned $conveyor_route {", "        default $conveyor_weighted;"]
    lines += ['        "~." $conveyor_pinned;', "    }"]
    names = {**{group(b, "b"): b for b in table.backends}, **{group(b, "p"): b for b in table.backends}}
    lines += ["    map $conveyor_route $conveyor_backend {"]
    lines += [f"        {group} {backend.name};" for group, backend in names.items()]
    lines += ["    }", "    map $conveyor_route $conveyor_version {", '        default "";']
    lines += [f'        {group} "{backend.version}";' for group, backend in names.items() if backend.version]
    lines += ["    }"]
    if limits.retry and len(table.backends) > 1:  # a backup answered (a retry, or its primary is down): name it
        served = [
            '    map "$conveyor_route $upstream_addr" $conveyor_served_by {',
            "        default $conveyor_backend;",
        ]
        served_version = [
            '    map "$conveyor_route $upstream_addr" $conveyor_served_version {',
            "        default $conveyor_version;",
        ]
        for backend in table.backends:  # exact keys first: the usual answer, from the chosen backend itself
            key = f'"{group(backend, "b")} {_host_port(backend.url)}"'
            served.append(f"        {key} {backend.name};")
            served_version.append(f'        {key} "{backend.version}";')
        for backend in table.backends:
            others = [b for b in table.backends if b is not backend and b.url != backend.url]
            for other in others:
                key = f'"~^{group(backend, "b")} (.*, )?{re.escape(_host_port(other.url))}$"'
                served.append(f"        {key} {other.name};")
                served_version.append(f'        {key} "{other.version}";')
        lines += [*served, "    }", *served_version, "    }"]
        served_name, served_label = "$conveyor_served_by", "$conveyor_served_version"
    else:
        served_name, served_label = "$conveyor_backend", "$conveyor_version"
    lines += [
        "    map $http_x_request_id $conveyor_request_id {",
        "        default $request_id;",
        '        "~^[!-~]{1,128}$" $http_x_request_id;',
        "    }",
        "    map $request_method $conveyor_counted {",
        "        default 0;",
        "        POST 1;",
        "    }",
        f"    log_format conveyor '{'|'.join('$' + field for field in LOG_FIELDS)}';",
    ]
    log = f"syslog:server=127.0.0.1:{listen.log_port},nohostname,tag={LOG_TAG}"
    return [
        "        location / {",
        "            proxy_pass http://$conveyor_route;",
        "            error_page 502 503 = @unreachable;",
        "            error_page 504 = @timeout;",
        '            proxy_set_header Connection "";',  # a location's own proxy_set_header replaces the http block's
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f'            proxy_set_header {PIN_HEADER} "";',
        "            proxy_set_header X-Request-Id $conveyor_request_id;",
        f"            proxy_next_upstream {'error timeout' if limits.retry else 'off'};",
        "            proxy_next_upstream_tries 2;",
        "            proxy_hide_header X-Request-Id;",
        "            add_header X-Request-Id $conveyor_request_id always;",
        f"            add_header {SERVED_BY_HEADER} {served_name} always;",
        f"            add_header {PIN_HEADER} {served_label} always;",
        f"            access_log {log} conveyor if=$conveyor_counted;",
        "        }",
    ]
