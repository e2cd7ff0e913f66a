"""``conveyor ui``: the registry, rollouts and pipeline runs in a browser.

Server-rendered pages (Jinja2) on the same Starlette stack as the servers, with htmx and its
server-sent-events extension vendored under ``static/`` (no Node build step): live views are
HTML fragments pushed over SSE, charts are SVG drawn on the server (``charts.py``).
"""

from conveyor.extras import needs

with needs("ui", "the dashboard (conveyor ui)"):
    # checked as the package is entered: Starlette imports its templates', sessions' and forms'
    # libraries only when a page first uses them
    import itsdangerous  # noqa: F401
    import jinja2  # noqa: F401
    import markupsafe  # noqa: F401
    import python_multipart  # noqa: F401
