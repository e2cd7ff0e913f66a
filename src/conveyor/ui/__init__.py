"""``conveyor ui``: the registry, rollouts and pipeline runs in a browser.

Server-rendered pages (Jinja2) on the same Starlette stack as the servers, with htmx and its
server-sent-events extension vendored under ``static/`` (no Node build step): live views are
HTML fragments pushed over SSE, charts are SVG drawn on the server (``conveyor/charts.py``, shared
with ``conveyor monitor --html``).
"""
